"""Resource allocation throughput: allocate + release pairs/s beside a raw floor.

One **pair** is what a task does with its resources: allocate (1 CPU core, 64 MB, a task
ID never used before) on one shared agent, then release it. Every client loops pairs
for a fixed time; the figure is all clients' pairs divided by the wall time from the
moment they all start to the moment the last one finishes its pair in flight. The
client threads live for a whole case (backend, clients, variant) and set up and warm
up every level once (connections opened, scripts loaded, statements prepared), so no
timed run opens anything.

Levels (one JSON line each per backend, client count and variant):

* ``store``: ``store.allocate(Allocation(...), time.time())`` then
  ``store.release_allocation(agent, task)``, on the store the allocator uses
  (``ResourceAllocator(...).engine.state_store``). This is what the floor is comparable
  with, and what the target applies to.
* ``face``: ``ResourceAllocator.allocate(agent, task, 1, 64)`` then ``.release(agent,
  task)``, with their defaults: a reservation look-up before the allocation, an audit
  record after each call and, when refused, a search for lower-priority victims
  (``preempt=True``; all allocations here have the same priority, so there are none).
  Reported for information.

Variants:

* ``throughput``: the agent's limits (CPU, memory, ``max_tasks``) admit every client at
  once, so nothing is ever refused and the measure is throughput, not refusals.
* ``contention`` (4 and 8 clients): the limits admit half the clients. A refused
  allocation is a completed attempt (it counts as a pair, and ``refused`` says how
  many); the floor runs against the same half-size limit. Reported for information.

**Floors**, measured in the same run, with the same client threads, loop and
connection setup (the ratio compares pairs/s with the floor's; see below):

* sqlite: ``UPDATE t SET used = used + ? WHERE id = ? AND used + ? <= lim`` (a check and
  increment that refuses over-commit), then ``UPDATE t SET used = used - ? WHERE id =
  ?``, each in its own ``BEGIN IMMEDIATE`` ... ``COMMIT`` (as the store writes), one
  connection per client thread (as the store keeps one per thread), WAL,
  synchronous=NORMAL, the store's busy timeout;
* postgres: the same two statements, autocommit (one statement, one transaction), one
  psycopg2 connection per client thread, to the same database;
* redis: ``EVALSHA`` of a tiny Lua script that reads ``used`` and ``limit`` from a hash
  and, when ``used + x <= limit``, increments ``used`` (HINCRBYFLOAT), then ``EVALSHA``
  of one that decrements it; one redis-py client shared by the threads (each thread
  gets its own pooled connection, as with the store).

The rounds interleave short floor, store and face runs (0.2 s each, their order
rotating from round to round), so all three see the same machine: on a shared 2-core
machine the load from other processes changes from one second to the next, and a
Redis round trip moves between ~40 and ~140 us with it. Pairs/s are totals over the
rounds; ``ratio`` is the **median of the per-round ratios** (each a store or face run
over the floor run next to it in time), which one disturbed run cannot move much;
``ratio_of_totals`` and ``ratio_by_round`` are reported beside it.

**Zero over-commit**, checked during every timed run: a checker samples the agent every
5 ms, ``store.list_allocations(agent)`` summed against the limits (CPU, memory, number
of allocations) and ``store.get_agent(agent).current_load`` against
``max_concurrent_tasks``; ``violations`` counts samples over a limit (must be 0) and
``peak_cpu_cores`` / ``peak_tasks`` show the checker did see the clients' allocations
overlap. During floor runs it reads the floor's counter against its limit. The checker
is a process of its own, forked when a case starts (:class:`Checker`), so its Python
does not take the clients' GIL.

**Clients are threads**, in every backend, for these reasons:

* that is how the store is shared in production: the engine's threads, the CLI and the
  faces call one store object, which is thread-safe and gives each thread its own
  connection (SQLite: one connection per thread; Redis and PostgreSQL: a pool, 10
  connections by default, more than 8 clients plus the checker need);
* the serialisation being measured happens where the GIL is not held: SQLite's write
  lock (the sqlite3 module releases the GIL while SQLite runs), Redis's single thread
  and PostgreSQL's row lock (both in another process, reached over a socket, with the
  GIL released while a client waits). Processes would add no write parallelism, and on
  the 2-core machine they would take CPU from ``redis-server`` and the PostgreSQL
  backends rather than give it to the clients;
* the floor runs on the same threads, so the harness and the GIL cost both sides; what
  the store does in Python on top of the floor's work is exactly what it should be
  charged for.

Target (``store`` level, ``throughput`` variant): pairs/s >= 0.6 x the floor's, with zero
violations, on every backend and client count. The spec claims 1,000+ allocation
operations/s: ``meets_spec`` says whether pairs/s (a pair counted as one operation, the
strict reading) reaches 1,000.

Run: ``python -m benchmarks.allocation [--quick] [--stores sqlite,redis,postgres]``
(``nox -s bench`` runs it with the other benchmarks). ``redis-server`` and a PostgreSQL
cluster are started on free loopback ports (PostgreSQL with fsync off, as the tests
run it); a backend that cannot run here is skipped with the reason printed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import multiprocessing
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from benchmarks.engine import emit
from benchmarks.servers import running_postgres, running_redis, unavailable
from devcrew_core.allocator import ResourceAllocator
from devcrew_core.config import load_settings
from devcrew_core.models import ResourceLimits
from devcrew_core.stores.base import Store, total
from devcrew_core.stores.records import Allocation

if TYPE_CHECKING:
    from redis import Redis

STORES = ("sqlite", "redis", "postgres")
CLIENT_COUNTS = (1, 4, 8)
VARIANTS = ("throughput", "contention")
LEVELS = ("store", "face")
#: store-level pairs/s over floor pairs/s, throughput variant.
TARGET_RATIO = 0.6
#: The spec's claim: 1,000+ allocation operations per second.
SPEC_PAIRS_PER_S = 1000.0
AGENT_ID = "bench-agent"
CPU_PER_TASK = 1.0
MEMORY_MB_PER_TASK = 64.0
#: How often the checker samples the agent during a timed run (seconds).
CHECK_INTERVAL = 0.005
#: Untimed pairs per client and level when a case starts (connections opened, scripts
#: loaded, statements prepared before anything is timed).
WARMUP_PAIRS = 20
#: Rounds (each runs floor, store and face once) and seconds per timed run.
SIZES = {"full": (20, 0.2), "quick": (1, 0.15)}
#: Float tolerance of the over-commit check (the stores allow the same).
EPS = 1e-9
FLOORS = {
    "sqlite": "UPDATE used + x WHERE used + x <= lim, then UPDATE used - x; each its own "
              "BEGIN IMMEDIATE transaction (WAL, synchronous=NORMAL), a connection per client",
    "postgres": "UPDATE used + x WHERE used + x <= lim, then UPDATE used - x; autocommit, "
                "a psycopg2 connection per client",
    "redis": "EVALSHA check-and-HINCRBYFLOAT script, then EVALSHA decrement script; "
             "redis-py, one client shared by the threads",
}

#: One attempt for a task ID: True when it was granted (and then released).
Pair = Callable[[str], bool]

_SQL_INCREMENT = "UPDATE bench_floor SET used = used + {m} WHERE id = {m} AND used + {m} <= lim"
_SQL_DECREMENT = "UPDATE bench_floor SET used = used - {m} WHERE id = {m}"
_LUA_INCREMENT = """
local v = redis.call('HMGET', KEYS[1], 'used', 'limit')
local x = tonumber(ARGV[1])
if tonumber(v[1]) + x <= tonumber(v[2]) then
  redis.call('HINCRBYFLOAT', KEYS[1], 'used', x)
  return 1
end
return 0
"""
_LUA_DECREMENT = "redis.call('HINCRBYFLOAT', KEYS[1], 'used', -tonumber(ARGV[1])) return 1"


# -- floors ------------------------------------------------------------------------------
class Floor(Protocol):
    """A bare check-and-increment + decrement on one counter with a limit."""

    def client(self) -> Pair:
        """Per-client set-up (run in the client's thread): its pair function."""

    def used(self) -> float:
        """The counter now (read by the checker thread)."""

    def close(self) -> None:
        """Close every connection."""


class SqliteFloor:
    """The two UPDATEs on a one-row table, each in a BEGIN IMMEDIATE transaction."""

    def __init__(self, path: Path, limit: float) -> None:
        self.path = path
        self._conns: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self._local = threading.local()
        conn = self._connect()
        conn.execute("CREATE TABLE bench_floor (id INTEGER PRIMARY KEY, used REAL NOT NULL, "
                     "lim REAL NOT NULL)")
        conn.execute("INSERT INTO bench_floor (id, used, lim) VALUES (1, 0, ?)", (limit,))

    def _connect(self) -> sqlite3.Connection:
        # The store's connection settings (devcrew_core.stores.sqlite.SQLiteStore._connect).
        conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                               check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        with self._guard:
            self._conns.append(conn)
        return conn

    def client(self) -> Pair:
        """A connection of the client's own and the pair on it."""
        execute = self._connect().execute
        increment, decrement = _SQL_INCREMENT.format(m="?"), _SQL_DECREMENT.format(m="?")

        def pair(_task_id: str) -> bool:
            execute("BEGIN IMMEDIATE")
            granted = execute(increment, (CPU_PER_TASK, 1, CPU_PER_TASK)).rowcount == 1
            execute("COMMIT")
            if granted:
                execute("BEGIN IMMEDIATE")
                execute(decrement, (CPU_PER_TASK, 1))
                execute("COMMIT")
            return granted

        return pair

    def used(self) -> float:
        """Read in the checker's own connection (a WAL reader never blocks writers)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return float(conn.execute("SELECT used FROM bench_floor WHERE id = 1").fetchone()[0])

    def close(self) -> None:
        with self._guard:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()


class PostgresFloor:
    """The two UPDATEs on a one-row table, autocommit, a connection per client."""

    def __init__(self, url: str, limit: float) -> None:
        self.url = url
        self._conns: list[Any] = []
        self._guard = threading.Lock()
        self._local = threading.local()
        with self._connect().cursor() as cur:
            cur.execute("CREATE TABLE bench_floor (id integer PRIMARY KEY, "
                        "used double precision NOT NULL, lim double precision NOT NULL)")
            cur.execute("INSERT INTO bench_floor (id, used, lim) VALUES (1, 0, %s)", (limit,))

    def _connect(self) -> Any:
        # Only the postgres cases need the client library (which ships no stubs).
        import psycopg2  # type: ignore[import-untyped,unused-ignore]

        conn = psycopg2.connect(self.url, application_name="devcrew-bench-floor")
        # As the store's pool sets its connections up: autocommit, read committed.
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SET default_transaction_isolation = 'read committed'")
        with self._guard:
            self._conns.append(conn)
        return conn

    def client(self) -> Pair:
        """A connection of the client's own and the pair on it."""
        cur = self._connect().cursor()
        increment, decrement = _SQL_INCREMENT.format(m="%s"), _SQL_DECREMENT.format(m="%s")

        def pair(_task_id: str) -> bool:
            cur.execute(increment, (CPU_PER_TASK, 1, CPU_PER_TASK))
            granted: bool = cur.rowcount == 1
            if granted:
                cur.execute(decrement, (CPU_PER_TASK, 1))
            return granted

        return pair

    def used(self) -> float:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        with conn.cursor() as cur:
            cur.execute("SELECT used FROM bench_floor WHERE id = 1")
            return float(cur.fetchone()[0])

    def close(self) -> None:
        with self._guard:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()


class RedisFloor:
    """Two EVALSHA scripts on one hash, one client (connection pool) for all threads."""

    def __init__(self, url: str, limit: float) -> None:
        import redis  # only the redis cases need the client library

        self.key = f"{{bench-floor-{uuid.uuid4().hex[:12]}}}:counter"
        self._client: Redis = redis.Redis.from_url(url, decode_responses=True)
        self._client.hset(self.key, mapping={"used": 0, "limit": limit})
        self._increment = self._client.register_script(_LUA_INCREMENT)
        self._decrement = self._client.register_script(_LUA_DECREMENT)

    def client(self) -> Pair:
        """The pair on the shared client."""
        increment, decrement, keys = self._increment, self._decrement, [self.key]
        args = [CPU_PER_TASK]

        def pair(_task_id: str) -> bool:
            granted = bool(increment(keys=keys, args=args) == 1)
            if granted:
                decrement(keys=keys, args=args)
            return granted

        return pair

    def used(self) -> float:
        return float(self._client.hget(self.key, "used") or 0.0)

    def close(self) -> None:
        self._client.close()


# -- the store and the face --------------------------------------------------------------
def store_pair(store: Store) -> Pair:
    """allocate + release at the store level (what the floor compares with)."""
    allocate, release = store.allocate, store.release_allocation

    def pair(task_id: str) -> bool:
        got = allocate(Allocation(agent_id=AGENT_ID, task_id=task_id, cpu_cores=CPU_PER_TASK,
                                  memory_mb=MEMORY_MB_PER_TASK), time.time())
        if got is None:
            return False
        release(AGENT_ID, task_id)
        return True

    return pair


def face_pair(allocator: ResourceAllocator) -> Pair:
    """allocate + release through ``ResourceAllocator`` (adds the reservation look-up
    and the audit records)."""

    def pair(task_id: str) -> bool:
        if allocator.allocate(AGENT_ID, task_id, CPU_PER_TASK, MEMORY_MB_PER_TASK) is None:
            return False
        allocator.release(AGENT_ID, task_id)
        return True

    return pair


# -- the over-commit checker -------------------------------------------------------------
@dataclass
class Capacity:
    """What the agent admits at once (limits on CPU and memory, and tasks)."""

    tasks: int

    @property
    def cpu_cores(self) -> float:
        return self.tasks * CPU_PER_TASK

    @property
    def memory_mb(self) -> float:
        return self.tasks * MEMORY_MB_PER_TASK

    def limits(self) -> ResourceLimits:
        return ResourceLimits(agent_id=AGENT_ID, cpu_cores=self.cpu_cores,
                              memory_mb=self.memory_mb, max_tasks=self.tasks)


@dataclass
class Sample:
    """One reading of the agent: over a limit or not, and what was in use."""

    over: bool
    cpu_cores: float
    tasks: int


def store_probe(store: Store, capacity: Capacity) -> Callable[[], Sample]:
    """Read the agent's allocations and load from the store and compare with limits."""

    def probe() -> Sample:
        allocations = store.list_allocations(AGENT_ID)
        used = total(allocations)
        agent = store.get_agent(AGENT_ID)
        if agent is None:
            raise RuntimeError(f"agent {AGENT_ID} vanished during the run")
        over = (used.cpu_cores > capacity.cpu_cores + EPS
                or used.memory_mb > capacity.memory_mb + EPS
                or len(allocations) > capacity.tasks
                or agent.current_load > agent.max_concurrent_tasks)
        return Sample(over, used.cpu_cores, max(len(allocations), agent.current_load))

    return probe


def floor_probe(floor: Floor, capacity: Capacity) -> Callable[[], Sample]:
    """Read the floor's counter and compare with its limit."""

    def probe() -> Sample:
        used = floor.used()
        return Sample(used > capacity.cpu_cores + EPS, used, round(used / CPU_PER_TASK))

    return probe


@dataclass
class Checks:
    """What the checker saw during one or more runs."""

    samples: int = 0
    violations: int = 0
    peak_cpu_cores: float = 0.0
    peak_tasks: int = 0

    def add(self, sample: Sample) -> None:
        self.samples += 1
        self.violations += sample.over
        self.peak_cpu_cores = max(self.peak_cpu_cores, sample.cpu_cores)
        self.peak_tasks = max(self.peak_tasks, sample.tasks)

    def merge(self, other: Checks) -> None:
        self.samples += other.samples
        self.violations += other.violations
        self.peak_cpu_cores = max(self.peak_cpu_cores, other.peak_cpu_cores)
        self.peak_tasks = max(self.peak_tasks, other.peak_tasks)


class Checker:
    """Samples one of ``probes`` every CHECK_INTERVAL while a run is timed, in a process
    of its own (forked before the client threads start): an observer, like a monitor
    process in production, competing with the clients for the machine's CPUs but not
    for their GIL. (As a thread, its Python, listing allocations and parsing an agent
    record 200 times a second, held up the client threads at their hand-overs of the
    GIL: ~14% of the PostgreSQL store's pairs at 4 clients; see docs/performance.md.)
    Messages are plain bytes and JSON, never pickles."""

    def __init__(self, probes: dict[str, Callable[[], Sample]]) -> None:
        context = multiprocessing.get_context("fork")
        self._conn, child = context.Pipe()
        # The child closes its copy of this end, so it sees EOF when this process dies.
        self._process = context.Process(target=_check, args=(child, self._conn, probes),
                                        name="overcommit-checker", daemon=True)
        self._process.start()
        child.close()

    def start(self, level: str) -> None:
        """Start sampling ``level``'s probe; returns once the first sample is taken."""
        self._conn.send_bytes(level.encode())
        self._reply()

    def stop(self) -> Checks:
        """Stop sampling: what the samples since :meth:`start` saw."""
        with contextlib.suppress(OSError):  # it failed and ended: its error is waiting
            self._conn.send_bytes(b"stop")
        return Checks(**self._reply())

    def _reply(self) -> dict[str, Any]:
        try:
            if not self._conn.poll(60):
                raise RuntimeError("the over-commit checker did not answer")
            reply: dict[str, Any] = json.loads(self._conn.recv_bytes())
        except EOFError:
            raise RuntimeError("the over-commit checker ended without a word") from None
        if "error" in reply:
            raise RuntimeError(f"the over-commit checker failed: {reply['error']}")
        return reply

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send_bytes(b"exit")
        self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.kill()
        self._conn.close()


def _check(conn: Connection, parents_end: Connection,
           probes: dict[str, Callable[[], Sample]]) -> None:
    """The checker process: sample the probe named by each message until "stop"."""
    parents_end.close()
    try:
        while (message := conn.recv_bytes()) != b"exit":
            probe = probes[message.decode()]
            checks = Checks()
            checks.add(probe())
            conn.send_bytes(b"{}")  # started
            while not conn.poll(CHECK_INTERVAL):
                checks.add(probe())
            conn.recv_bytes()  # stop
            conn.send_bytes(json.dumps(dataclasses.asdict(checks)).encode())
    except EOFError:
        pass  # the parent is gone
    except Exception as exc:  # reported to the parent, which raises
        conn.send_bytes(json.dumps({"error": repr(exc)}).encode())


# -- running clients ---------------------------------------------------------------------
@dataclass
class Tally:
    """Pairs (attempts), refusals and timed seconds, summed over runs."""

    pairs: int = 0
    refused: int = 0
    seconds: float = 0.0
    rounds: list[float] = field(default_factory=list)  # pairs/s of each run

    def add(self, pairs: int, refused: int, seconds: float) -> None:
        self.pairs += pairs
        self.refused += refused
        self.seconds += seconds
        self.rounds.append(pairs / seconds)

    @property
    def per_s(self) -> float:
        return self.pairs / self.seconds if self.seconds else 0.0


class Crew:
    """``clients`` threads that live for a whole case and run one level at a time.

    Each thread sets up every level's pair once (its own connection where the level
    needs one) and warms each up, then waits for the main thread to start a run:
    all threads start together at a barrier, loop the level's pairs until told to
    stop, finish the pair in flight and meet at a second barrier. Keeping the threads
    (and so their connections) across runs means nothing is opened inside a timed run,
    however many short runs a case has."""

    def __init__(self, clients: int, makers: dict[str, Callable[[], Pair]]) -> None:
        self.clients = clients
        self._makers = makers
        self._start = threading.Barrier(clients + 1, timeout=300)
        self._end = threading.Barrier(clients + 1, timeout=300)
        self._stop = threading.Event()
        self._level: str | None = None
        self._label = ""
        self._counts: list[tuple[int, int]] = [(0, 0)] * clients
        self._failed: list[BaseException] = []
        self._threads = [threading.Thread(target=self._client, args=(i,), name=f"client-{i}",
                                          daemon=True) for i in range(clients)]
        for thread in self._threads:
            thread.start()
        self._meet(self._start)  # every client is set up and warm

    def _client(self, index: int) -> None:
        try:
            pairs = {name: make() for name, make in self._makers.items()}
            for name, pair in pairs.items():
                for i in range(WARMUP_PAIRS):
                    pair(f"warm-{name}-c{index}-{i}")
            self._start.wait()
            while True:
                self._start.wait()
                if self._level is None:
                    return
                pair, label, stop = pairs[self._level], self._label, self._stop
                done = refused = 0
                while not stop.is_set():
                    if not pair(f"{label}-c{index}-{done}"):
                        refused += 1
                    done += 1
                self._counts[index] = (done, refused)
                self._end.wait()
        except threading.BrokenBarrierError:
            pass  # another thread failed: its error is reported
        except BaseException as exc:  # re-raised in the main thread
            self._failed.append(exc)
            self._start.abort()
            self._end.abort()

    def _meet(self, barrier: threading.Barrier) -> None:
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            self.close()
            raise RuntimeError("a client failed") from (
                self._failed[0] if self._failed else None)

    def run(self, level: str, label: str, seconds: float,
            checker: Checker) -> tuple[int, int, float, Checks]:
        """Every client loops ``level``'s pairs for ``seconds``, while the checker
        samples ``level``'s probe; returns (pairs, refused, elapsed seconds, what it
        saw)."""
        self._level, self._label = level, label
        self._stop.clear()
        checker.start(level)
        try:
            self._meet(self._start)
            start = time.perf_counter()
            time.sleep(seconds)
            self._stop.set()
            self._meet(self._end)
            elapsed = time.perf_counter() - start
        finally:
            checks = checker.stop()
        return sum(c[0] for c in self._counts), sum(c[1] for c in self._counts), elapsed, \
            checks

    def close(self) -> None:
        """Let the threads end (idempotent)."""
        self._level = None
        with contextlib.suppress(threading.BrokenBarrierError):
            if not self._start.broken:
                self._start.wait(timeout=30)
        for thread in self._threads:
            thread.join(timeout=30)


# -- backends -----------------------------------------------------------------------------
@dataclass
class Servers:
    """Where the server-backed stores run, for this benchmark run."""

    directory: Path
    redis_url: str | None = None
    postgres_url: str | None = None


@contextlib.contextmanager
def backend(store: str, servers: Servers, tag: str, capacity: Capacity
            ) -> Iterator[tuple[ResourceAllocator, Floor]]:
    """A fresh allocator (with the agent registered) and a fresh floor for one case."""
    floor: Floor
    if store == "sqlite":
        url = f"sqlite:///{servers.directory / f'{tag}.db'}"
        floor = SqliteFloor(servers.directory / f"{tag}-floor.db", capacity.cpu_cores)
    elif store == "redis":
        assert servers.redis_url is not None
        url = f"{servers.redis_url}?prefix={tag}"
        floor = RedisFloor(servers.redis_url, capacity.cpu_cores)
    else:
        assert servers.postgres_url is not None
        url = postgres_schema_url(servers.postgres_url, tag)
        floor = PostgresFloor(url, capacity.cpu_cores)
    settings = load_settings(state_url=url, home=str(servers.directory))
    allocator = ResourceAllocator(settings=settings)
    try:
        allocator.register_agent(capacity.limits())
        yield allocator, floor
    finally:
        allocator.close()
        floor.close()


def postgres_schema_url(base: str, tag: str) -> str:
    """Create schema ``tag`` and return ``base`` confined to it (``search_path``), so
    each case gets empty tables in the same database."""
    import psycopg2  # type: ignore[import-untyped,unused-ignore]

    schema = tag.replace("-", "_")
    conn = psycopg2.connect(base)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE SCHEMA {schema}")
    finally:
        conn.close()
    return f"{base}?options=-csearch_path%3D{schema}"


def run_case(store: str, clients: int, variant: str, servers: Servers,
             quick: bool) -> list[dict[str, Any]]:
    """Floor, store and face runs interleaved for one (backend, clients, variant); one
    JSON line per level."""
    rounds, seconds = SIZES["quick" if quick else "full"]
    capacity = Capacity(clients if variant == "throughput" else clients // 2)
    tag = f"alloc_{store}_{clients}_{variant}_{uuid.uuid4().hex[:8]}"
    tallies = {name: Tally() for name in ("floor", *LEVELS)}
    checks = {name: Checks() for name in ("floor", *LEVELS)}
    with backend(store, servers, tag, capacity) as (allocator, floor):
        state = allocator.engine.state_store
        probes = {"floor": floor_probe(floor, capacity),
                  "store": store_probe(state, capacity), "face": store_probe(state, capacity)}
        # Forked before the client threads start (a fork copies only the calling thread).
        checker = Checker(probes)
        try:
            crew = Crew(clients, {"floor": floor.client,
                                  "store": lambda: store_pair(state),
                                  "face": lambda: face_pair(allocator)})
        except BaseException:
            checker.close()
            raise
        try:
            order = list(probes)
            for round_ in range(rounds):
                # Rotate the order, so no level always runs first or after the same one.
                for name in order[round_ % 3:] + order[:round_ % 3]:
                    pairs, refused, elapsed, seen = crew.run(
                        name, f"{name}-r{round_}", seconds, checker)
                    tallies[name].add(pairs, refused, elapsed)
                    checks[name].merge(seen)
        finally:
            crew.close()
            checker.close()
        load = os.getloadavg()[0]
    floor_tally = tallies["floor"]
    cases = []
    for level in LEVELS:
        tally, seen = tallies[level], checks[level]
        by_round = [a / b for a, b in zip(tally.rounds, floor_tally.rounds, strict=True)]
        ratio = statistics.median(by_round)
        judged = level == "store" and variant == "throughput"
        cases.append(emit({
            "case": "allocate-release", "store": store, "clients": clients, "level": level,
            "variant": variant, "client_mode": "threads",
            "capacity": {"cpu_cores": capacity.cpu_cores, "memory_mb": capacity.memory_mb,
                         "tasks": capacity.tasks},
            "rounds": rounds, "seconds": round(tally.seconds, 3),
            "pairs": tally.pairs, "refused": tally.refused,
            "pairs_per_s": round(tally.per_s, 1),
            "floor": FLOORS[store], "floor_pairs_per_s": round(floor_tally.per_s, 1),
            "floor_refused": floor_tally.refused,
            "ratio": round(ratio, 3),
            "ratio_of_totals": round(tally.per_s / floor_tally.per_s, 3),
            "ratio_by_round": [round(r, 3) for r in by_round],
            "target_ratio": TARGET_RATIO if judged else None,
            "meets_target": (ratio >= TARGET_RATIO and seen.violations == 0) if judged
            else None,
            "violations": seen.violations, "samples": seen.samples,
            "peak_cpu_cores": seen.peak_cpu_cores, "peak_tasks": seen.peak_tasks,
            "floor_violations": checks["floor"].violations,
            "floor_samples": checks["floor"].samples,
            "spec_pairs_per_s": SPEC_PAIRS_PER_S,
            # Other processes' load matters on a shared machine: say what it was.
            "load_average_1m": round(load, 2),
            "meets_spec": tally.per_s >= SPEC_PAIRS_PER_S if variant == "throughput"
            else None,
        }))
    return cases




def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """``--quick``, ``--stores``, ``--clients`` and ``--variants``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.allocation",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="one short round per case")
    parser.add_argument("--stores", default=",".join(STORES),
                        help="comma-separated stores to measure (default: all)")
    parser.add_argument("--clients", default=",".join(map(str, CLIENT_COUNTS)),
                        help="comma-separated client counts (default: 1,4,8)")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="throughput and/or contention (default: both)")
    return parser.parse_args(list(argv))


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def main(argv: Sequence[str] | None = None,
         stores: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Run every case and print one JSON line each; ``stores`` overrides ``--stores``."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    chosen = list(stores) if stores is not None else _split(args.stores)
    unknown = sorted(set(chosen) - set(STORES))
    if unknown:
        raise SystemExit(f"unknown store(s): {', '.join(unknown)} (known: {', '.join(STORES)})")
    variants = _split(args.variants)
    if set(variants) - set(VARIANTS):
        raise SystemExit(f"unknown variant(s) in {args.variants!r} (known: throughput, "
                         "contention)")
    try:
        client_counts = [int(c) for c in _split(args.clients)]
    except ValueError:
        raise SystemExit(f"--clients: expected numbers, got {args.clients!r}") from None
    cases: list[dict[str, Any]] = []
    with ExitStack() as stack:
        directory = Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="devcrew-bench-")))
        servers = Servers(directory)
        for store in list(chosen):
            reason = unavailable(store)
            if reason is not None:
                print(f"allocation benchmark: skipping {store}: {reason}", file=sys.stderr)
                cases.append(emit({"case": "allocate-release", "store": store,
                                   "skipped": reason}))
                chosen.remove(store)
        if "redis" in chosen:
            servers.redis_url = stack.enter_context(running_redis(directory / "redis"))
        if "postgres" in chosen:
            servers.postgres_url = stack.enter_context(running_postgres())
        for store in chosen:
            for variant in variants:
                for clients in client_counts:
                    # Half of one client is nobody: contention needs 2 clients or more.
                    if variant == "contention" and clients < 2:
                        continue
                    cases += run_case(store, clients, variant, servers, args.quick)
    return cases


if __name__ == "__main__":
    main()
