"""Delegation latency: find the best agent, delegate, complete, beside a floor.

One sample is the cycle a caller of :class:`~devcrew_core.delegation.DelegationManager`
runs for a task, with a fresh ``task_id`` each time::

    match = manager.find_best_agent(request)
    manager.delegate_task(request, match)
    manager.complete_task(match.agent_id, request.task_id)

timed with ``perf_counter`` around those three calls (building the ``TaskRequest`` is
the caller's input and is not timed). Every case warms up first, then reports p50 and
p99 in microseconds, on the ``memory``, ``sqlite`` and ``redis`` stores with 10, 100
and 1,000 registered agents. Two matcher modes per (store, agents):

* ``default``: the manager as shipped; its :class:`~devcrew_core.engine.matching.
  AgentMatcher` keeps each kind of request's eligible agents for 0.5 s and tracks their
  loads from its own delegations and completions. ``index_queries_per_cycle`` says how
  often the store's capability/type index was asked (``find_agents`` calls).
* ``uncached``: the matcher's cache is cleared before every sample (outside the timed
  part), so every cycle asks the store's index: the cost of a request kind never seen
  in the last 0.5 s.

Floors, measured in the same run (the ratio is p50 / floor):

* redis: one ``EVALSHA`` round trip from redis-py (``Script.__call__``, the way a
  Python client sends a script) of a tiny script that INCRs and DECRs one key (a
  check-and-increment, the least a slot claim does), same server, on its own
  connection. One probe runs right before every timed cycle and the floor is their
  median, so floor and cycle see the same machine load (on a shared 2-core machine the
  round trip moves between ~35 and ~140 us from one second to the next). Every other
  probe instead sends the same EVALSHA on a bare redis-py connection
  (``send_command`` + ``read_response``: no pool checkout, no per-command hooks), as the
  store's hot paths do; that floor and its ratio are reported as ``raw_floor_us`` and
  ``raw_ratio`` beside the target's;
* sqlite: one committed single-row write transaction (``benchmarks.engine.sqlite_floor``:
  WAL, synchronous=NORMAL, like the store), measured after each case's samples;
* memory: a dict check-and-increment plus decrement under a ``threading.Lock``,
  measured after each case's samples.

Target: on redis, the ``default`` cycle at 1,000 agents has p50 <= 4x the EVALSHA floor
(redis-py's call, as ``docs/performance.md`` and the environment notes define a round
trip; the bare-connection ratio is reported, not targeted).
The memory and sqlite ratios are reported without a target (the memory floor is a
dictionary operation: that ratio only shows how much Python the cycle costs).

Agent distribution (seeded, the same every run): 20 agent types ``type-00..19``
(agent ``i`` has type ``i % 20``) and a vocabulary of 40 capabilities ``skill-00..39``.
Type ``k`` has a capability group of 6, ``skill-(2k)..skill-(2k+5)`` (mod 40), so
neighbouring types share 4 capabilities and every capability index spans three types.
Each agent has 3 or 4 capabilities from its type's group, ``max_concurrent_tasks`` 2-5,
``priority_weight`` 5-50, and before timing holds a random 0..max-1 of its slots with
background delegations that stay active (so loads differ, ranking has work to do, and
every agent keeps a free slot). A request asks for one agent type and 1 or 2
capabilities, drawn from a random agent of the fleet (so at least that agent is
eligible); a pool of 200 request kinds (146 distinct at 1,000 agents) is used in a
seeded random order. At 1,000 agents a request has 10-37 eligible agents (median 22;
1-3.7% of the fleet); at 100 agents 1-5 (median 3); at 10 agents exactly 1 (each JSON
line reports min/median/max).

Run: ``python -m benchmarks.delegation [--quick] [--stores memory,sqlite,redis]``
(``nox -s bench`` runs it with the other benchmarks). ``redis-server`` is started on a
free loopback port; without it the redis cases are skipped with the reason printed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks.engine import emit, sqlite_floor
from benchmarks.servers import running_redis, unavailable
from devcrew_core.config import load_settings
from devcrew_core.delegation import DelegationManager
from devcrew_core.models import TaskRequest
from devcrew_core.stores.records import AgentRecord, DelegationRecord

if TYPE_CHECKING:
    from redis.commands.core import Script

STORES = ("memory", "sqlite", "redis")
AGENT_COUNTS = (10, 100, 1000)
AGENT_TYPES = 20
VOCABULARY = 40
GROUP_SIZE = 6
REQUEST_KINDS = 200
SEED = 20261124
#: p50 of the cycle over the floor, per store; None = reported without a target.
TARGETS: dict[str, float | None] = {"memory": None, "sqlite": None, "redis": 4.0}
#: The agent count the target applies to (smaller fleets are reported for scale).
TARGET_AGENTS = 1000
FLOORS = {
    "memory": "dict check-and-increment + decrement under a threading.Lock",
    "sqlite": "one committed single-row SQLite write (WAL, synchronous=NORMAL)",
    "redis": "one EVALSHA round trip (INCR + DECR script), redis-py, same server",
}
#: Samples and warm-up cycles per case.
SIZES = {"full": (3000, 500), "quick": (150, 50)}

# A tiny script that does what the least slot claim does: check-and-increment a counter,
# then give it back, so the floor is a real script run, not just PING.
_FLOOR_SCRIPT = "local n = redis.call('INCR', KEYS[1]) redis.call('DECR', KEYS[1]) return n"


@dataclass(frozen=True)
class AgentPlan:
    """One agent of the fleet and the slots it holds before timing starts."""

    agent_id: str
    agent_type: str
    capabilities: tuple[str, ...]
    max_concurrent_tasks: int
    priority_weight: int
    background: int


@dataclass(frozen=True)
class RequestKind:
    """What a request asks for: one agent type and 1-2 capabilities."""

    agent_type: str
    capabilities: tuple[str, ...]

    def eligible(self, fleet: Sequence[AgentPlan]) -> int:
        """How many agents of ``fleet`` have the type and every capability."""
        need = set(self.capabilities)
        return sum(1 for a in fleet
                   if a.agent_type == self.agent_type and need <= set(a.capabilities))


def build_fleet(count: int, rng: random.Random) -> list[AgentPlan]:
    """``count`` agents spread over the types and capability groups (module docstring)."""
    fleet = []
    for i in range(count):
        kind = i % AGENT_TYPES
        group = [f"skill-{(2 * kind + j) % VOCABULARY:02d}" for j in range(GROUP_SIZE)]
        caps = tuple(sorted(rng.sample(group, rng.choice((3, 4)))))
        limit = rng.randint(2, 5)
        fleet.append(AgentPlan(
            agent_id=f"agent-{i:04d}", agent_type=f"type-{kind:02d}", capabilities=caps,
            max_concurrent_tasks=limit, priority_weight=rng.randint(5, 50),
            background=rng.randint(0, limit - 1)))
    return fleet


def request_kinds(fleet: Sequence[AgentPlan], rng: random.Random,
                  count: int = REQUEST_KINDS) -> list[RequestKind]:
    """``count`` request kinds, each drawn from a random agent (so one is eligible)."""
    kinds = []
    for _ in range(count):
        agent = rng.choice(fleet)
        caps = tuple(sorted(rng.sample(agent.capabilities, rng.choice((1, 2)))))
        kinds.append(RequestKind(agent_type=agent.agent_type, capabilities=caps))
    return kinds


def workload(agents: int) -> tuple[list[AgentPlan], list[RequestKind]]:
    """The fleet of ``agents`` agents and the request kinds: the same every run."""
    rng = random.Random(f"{SEED}-{agents}")  # noqa: S311 - a seeded workload, no secret
    fleet = build_fleet(agents, rng)
    return fleet, request_kinds(fleet, rng)


# -- floors ------------------------------------------------------------------------------
def memory_floor(n: int = 200_000) -> float:
    """Seconds per dict check-and-increment plus decrement under a lock (a slot taken
    and given back in the memory store, without any of its bookkeeping)."""
    lock = threading.Lock()
    loads = {"agent": 0}
    limit = 1 << 30
    start = time.perf_counter()
    for _ in range(n):
        with lock:
            if loads["agent"] < limit:
                loads["agent"] += 1
        with lock:
            loads["agent"] -= 1
    return (time.perf_counter() - start) / n


class RedisFloor:
    """One EVALSHA round trip of a tiny INCR/DECR script, on its own connection.

    The benchmark calls :meth:`probe` right before every timed cycle, so the floor is
    measured under the same machine load as the cycle it is compared with (on a
    shared 2-core machine a round trip takes 35 us when the other core is idle and
    over 100 us when it is busy, and that changes from second to second)."""

    KEY = "{bench-floor}:counter"

    def __init__(self, url: str) -> None:
        import redis  # only the redis cases need the client library

        self._client = redis.Redis.from_url(url, decode_responses=True)
        self._script: Script = self._client.register_script(_FLOOR_SCRIPT)
        for _ in range(200):  # load the script, warm the connection
            self._script(keys=[self.KEY])
        # A second connection, used bare (send, read): the round trip without the
        # client's per-command work, as the store's hot paths send their scripts.
        self._raw_client = redis.Redis.from_url(url, decode_responses=True)
        self._connection = self._raw_client.connection_pool.get_connection()
        self.samples: list[float] = []
        self.raw_samples: list[float] = []

    def probe(self) -> None:
        """Time one round trip and keep the sample: redis-py's call and the bare
        connection take turns, so each probe follows a cycle as the other does (a
        round trip right after another one finds the server awake and is faster)."""
        start = time.perf_counter()
        if len(self.samples) <= len(self.raw_samples):
            self._script(keys=[self.KEY])
            self.samples.append(time.perf_counter() - start)
        else:
            self._connection.send_command("EVALSHA", self._script.sha, 1, self.KEY)
            self._connection.read_response()
            self.raw_samples.append(time.perf_counter() - start)

    def close(self) -> None:
        """Close the connections."""
        self._raw_client.connection_pool.release(self._connection)
        self._raw_client.close()
        self._client.close()


# -- the cycle ----------------------------------------------------------------------------
def populate(manager: DelegationManager, fleet: Sequence[AgentPlan]) -> None:
    """Register the fleet and take each agent's background slots with delegations
    that stay active while the cycle is timed."""
    for plan in fleet:
        manager.register_agent(plan.agent_id, plan.agent_type, list(plan.capabilities),
                               max_concurrent_tasks=plan.max_concurrent_tasks,
                               priority_weight=plan.priority_weight)
    store = manager.engine.state_store
    for plan in fleet:
        for slot in range(plan.background):
            task_id = f"bg-{plan.agent_id}-{slot}"
            result = store.delegate(DelegationRecord(
                task_id=task_id, agent_id=plan.agent_id, agent_type=plan.agent_type,
                task_type="background", required_capabilities=list(plan.capabilities),
                delegated_at=time.time()))
            if not result.acquired:
                raise RuntimeError(f"background slot {task_id} was refused")
    manager.engine.matcher.invalidate()


@contextmanager
def counting_index_queries(manager: DelegationManager) -> Iterator[list[int]]:
    """Count the store's ``find_agents`` calls (one per capability/type index query)
    while the context is open; yields a one-element list holding the count."""
    store = manager.engine.state_store
    original = store.find_agents
    count = [0]

    def counted(capabilities: Sequence[str],
                agent_type: str | None = None) -> list[AgentRecord]:
        count[0] += 1
        return original(capabilities, agent_type)

    # An instance attribute shadows the method; the matcher calls it through the store.
    setattr(store, "find_agents", counted)  # noqa: B010 - mypy rejects method assignment
    try:
        yield count
    finally:
        delattr(store, "find_agents")


def time_cycles(manager: DelegationManager, kinds: Sequence[RequestKind], samples: int,
                rng: random.Random, *, label: str, uncached: bool,
                probe: Callable[[], None] | None = None) -> list[float]:
    """Seconds per find + delegate + complete cycle, ``samples`` of them, each for a
    new task ``{label}-{i}``; ``probe`` (a floor measurement) runs before each cycle,
    outside its time."""
    invalidate: Callable[[], None] = manager.engine.matcher.invalidate
    times = []
    for i in range(samples):
        kind = kinds[rng.randrange(len(kinds))]
        request = TaskRequest(task_id=f"{label}-{i}",
                              task_type="bench",
                              required_capabilities=list(kind.capabilities),
                              required_agent_type=kind.agent_type)
        if uncached:
            invalidate()
        if probe is not None:
            probe()
        start = time.perf_counter()
        match = manager.find_best_agent(request)
        if match is None:
            raise RuntimeError(f"no agent for {kind}: every agent should keep a free slot")
        manager.delegate_task(request, match)
        manager.complete_task(match.agent_id, request.task_id)
        times.append(time.perf_counter() - start)
    return times


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values."""
    index = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]



def store_url(store: str, directory: Path, redis_url: str | None, agents: int) -> str:
    """A fresh, empty store of kind ``store``."""
    tag = f"bench-{agents}-{time.monotonic_ns()}"
    if store == "memory":
        return f"memory://{tag}"
    if store == "sqlite":
        return f"sqlite:///{directory / f'{tag}.db'}"
    assert redis_url is not None
    return f"{redis_url}?prefix={tag}"


def floor_seconds(store: str, directory: Path) -> float:
    """The memory or sqlite floor, measured now (redis: :class:`RedisFloor`)."""
    if store == "memory":
        return memory_floor()
    # sqlite_floor makes its own database file: give each call a fresh directory.
    return sqlite_floor(Path(tempfile.mkdtemp(prefix="floor-", dir=directory)))


def run_case(store: str, agents: int, directory: Path, redis_url: str | None,
             quick: bool) -> list[dict[str, Any]]:
    """Both matcher modes for one store and fleet size: two JSON lines."""
    fleet, kinds = workload(agents)
    eligible = sorted(kind.eligible(fleet) for kind in kinds)
    samples, warmup = SIZES["quick" if quick else "full"]
    url = store_url(store, directory, redis_url, agents)
    settings = load_settings(state_url=url, home=str(directory))
    cases = []
    with DelegationManager(settings=settings) as manager:
        populate(manager, fleet)
        for mode in ("default", "uncached"):
            redis_floor = RedisFloor(redis_url) if store == "redis" and redis_url else None
            # The same request sequence on every store, so the stores compare.
            rng_mode = random.Random(f"{SEED}-{mode}")  # noqa: S311 - no secret
            uncached = mode == "uncached"
            try:
                time_cycles(manager, kinds, warmup, rng_mode, label=f"warm-{mode}",
                            uncached=uncached)
                with counting_index_queries(manager) as queries:
                    times = sorted(time_cycles(
                        manager, kinds, samples, rng_mode, label=f"task-{mode}",
                        uncached=uncached,
                        probe=None if redis_floor is None else redis_floor.probe))
            finally:
                if redis_floor is not None:
                    redis_floor.close()
            floor = floor_seconds(store, directory) if redis_floor is None \
                else statistics.median(redis_floor.samples)
            raw_floor = None if redis_floor is None \
                else statistics.median(redis_floor.raw_samples)
            p50 = percentile(times, 0.50)
            ratio = p50 / floor
            target = TARGETS[store] if mode == "default" and agents == TARGET_AGENTS \
                else None
            cases.append(emit({
                "case": "delegation-cycle", "store": store, "agents": agents,
                "matcher": mode, "samples": samples,
                "p50_us": round(p50 * 1e6, 1),
                "p99_us": round(percentile(times, 0.99) * 1e6, 1),
                "mean_us": round(statistics.fmean(times) * 1e6, 1),
                "floor": FLOORS[store], "floor_us": round(floor * 1e6, 2),
                "ratio": round(ratio, 2), "target_ratio": target,
                **({} if raw_floor is None else {
                    "raw_floor_us": round(raw_floor * 1e6, 2),
                    "raw_ratio": round(p50 / raw_floor, 2)}),
                "meets_target": None if target is None else ratio <= target,
                "eligible_agents": {"min": eligible[0],
                                    "median": statistics.median(eligible),
                                    "max": eligible[-1]},
                "index_queries_per_cycle": round(queries[0] / samples, 3),
            }))
    return cases



def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """``--quick`` and ``--stores``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.delegation",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    parser.add_argument("--stores", default=",".join(STORES),
                        help="comma-separated stores to measure (default: all)")
    return parser.parse_args(list(argv))


def main(argv: Sequence[str] | None = None,
         stores: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Run every case and print one JSON line each; ``stores`` overrides ``--stores``."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    chosen = list(stores) if stores is not None else \
        [s.strip() for s in args.stores.split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(STORES))
    if unknown:
        raise SystemExit(f"unknown store(s): {', '.join(unknown)} (known: {', '.join(STORES)})")
    cases: list[dict[str, Any]] = []
    with ExitStack() as stack:
        directory = Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="devcrew-bench-")))
        redis_url = None
        if "redis" in chosen:
            reason = unavailable("redis")
            if reason is not None:
                print(f"delegation benchmark: skipping redis: {reason}", file=sys.stderr)
                cases.append(emit({"case": "delegation-cycle", "store": "redis",
                                   "skipped": reason}))
                chosen.remove("redis")
            else:
                redis_url = stack.enter_context(running_redis(directory / "redis"))
        for store in chosen:
            for agents in AGENT_COUNTS:
                cases += run_case(store, agents, directory, redis_url, args.quick)
    return cases


if __name__ == "__main__":
    main()
