"""``sqlite:///path``: the embedded default store, one SQLite file in WAL mode.

Each thread of each process gets its own connection. Every mutation that guards an
invariant runs in one ``BEGIN IMMEDIATE`` transaction, which takes SQLite's write lock
up front, so check-then-write sequences are atomic across threads and processes; or in
one statement (allocating and releasing resources, in the common case), whose implicit
transaction takes the write lock when it starts, likewise.
Synchronous mode is NORMAL by default (durable across process crashes; add
``?synchronous=full`` to the URL to survive power loss as well).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devcrew_core.errors import ConfigError, NotFoundError, StoreError
from devcrew_core.forks import generation
from devcrew_core.ids import ID_PATTERN, validate_id, validate_optional_id
from devcrew_core.stores.base import (
    AGENT_MUTABLE_FIELDS,
    HANDOFF_MUTABLE_FIELDS,
    RUN_MUTABLE_FIELDS,
    Store,
    already_delegated,
    apply_changes,
    ceiling,
)
from devcrew_core.stores.filters import where_clause
from devcrew_core.stores.granted import GrantedAllocations, holding_slot, stored_allocation
from devcrew_core.stores.records import (
    AgentRecord,
    Allocation,
    AuditRecord,
    DelegationRecord,
    DelegationStatus,
    Event,
    HandoffRecord,
    Reservation,
    RunRecord,
    SlotResult,
    TaskState,
    WaitRecord,
    WorkflowDefinition,
)

try:  # POSIX only; on other systems concurrent first-time migrations rely on IF NOT EXISTS.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

_MIGRATIONS = "devcrew_core.stores.sql.sqlite"
_DERIVED = {"current_load", "running_tasks"}
#: The load of agent ``a``: its totals row in ``holdings`` keeps it (the table's triggers
#: change it with the agent's slots), so reading it is O(1) however many tasks it runs.
_LOAD = ("COALESCE((SELECT h.load FROM holdings h "
         "WHERE h.agent_id = a.agent_id AND h.task_id = ''), 0)")
_DIMS = ("cpu_cores", "memory_mb", "disk_mb", "network_mbps")
_SYNC_MODES = {"normal": "NORMAL", "full": "FULL", "off": "OFF"}
_match_id = ID_PATTERN.fullmatch


def sqlite_path(url: str) -> tuple[Path, dict[str, str]]:
    """Split ``sqlite:///abs/path.db?synchronous=full`` into a path and options."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise ConfigError(f"not a sqlite URL: {url!r}")
    raw = parts.netloc + parts.path
    if not raw or raw == "/":
        raise ConfigError(f"sqlite URL {url!r} names no file (expected sqlite:///path/to/file.db)")
    if raw.startswith("//"):
        raw = raw[1:]
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = sorted(set(options) - {"synchronous"})
    if unknown:
        raise ConfigError(f"sqlite URL {url!r}: unknown option(s) {', '.join(unknown)}")
    return Path(raw).expanduser(), options


def _where(filters: Mapping[str, Any]) -> tuple[str, list[Any]]:
    return where_clause(filters, "?")


#: ``base.fits``'s tolerance for float rounding (0.1 + 0.2 cores fit a 0.3 limit).
_FIT_EPS = 1e-9

# How the agents' slots and allocations are stored (schema 8, 008_holdings.sql): one
# WITHOUT ROWID table, ``holdings``, keyed (agent_id, task_id). A task row is what a task
# holds on an agent: its load slot (``slot_at`` not NULL) and/or its allocation
# (``created_at`` not NULL, the allocation's fields as columns). The agent's totals row
# (task_id '', which no task ID can be) has its load, the number and sums of its
# allocations, the number of its reservations and its limits; triggers keep it in step.
# An agent's rows are neighbours in one B-tree, so taking or freeing resources writes
# one page; allocate and release are one statement each in the common case.

#: The allocation's fields in a task row, as :func:`_allocation_from` reads them.
_ALLOCATION_COLUMNS = ("created_at, cpu_cores, memory_mb, disk_mb, network_mbps, priority, "
                       "preemptable, reservation_id, holds_slot")

#: allocate()'s common case in one statement (so one implicit transaction, which takes
#: the write lock when it starts, as BEGIN IMMEDIATE does): insert the task's row with
#: its new slot and the allocation. The insert trigger (008_holdings.sql) adds them to the
#: agent's totals and fails the statement, undoing it, unless the result is within the
#: agent's limits and the agent has no reservations; nothing is inserted either when the
#: task holds something there already (ON CONFLICT). Either way ``_allocate_in`` decides.
_ALLOCATE = (
    "INSERT INTO holdings (agent_id, task_id, slot_at, created_at, cpu_cores, memory_mb, "
    "disk_mb, network_mbps, priority, preemptable, reservation_id, holds_slot) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT DO NOTHING"
)

#: release_allocation()'s common case in one statement: delete the task's row when the
#: allocation is all it holds (it took the task's slot itself, or the task holds none).
#: The delete trigger takes the allocation and the slot off the totals.
_RELEASE = ("DELETE FROM holdings WHERE agent_id = ? AND task_id = ? "  # noqa: S608
            "AND created_at IS NOT NULL AND (holds_slot OR slot_at IS NULL) "
            f"RETURNING {_ALLOCATION_COLUMNS}")

#: release_allocation() of an allocation this store object granted through _ALLOCATE, in
#: one statement and without reading the row back (RETURNING nine columns cost more than
#: the rest of the statement): delete the row only if it holds exactly the granted
#: allocation (every field equal), so the granted object is what was deleted. Its
#: parameters are _ALLOCATE's own, kept with the granted object (?3, the slot's time, is
#: not compared); the store uses them only while the object's fields are unchanged, so
#: it still holds its slot. Else _RELEASE decides.
_RELEASE_GRANTED = (
    "DELETE FROM holdings WHERE agent_id = ?1 AND task_id = ?2 AND created_at = ?4 "
    "AND cpu_cores = ?5 AND memory_mb = ?6 AND disk_mb = ?7 AND network_mbps = ?8 "
    "AND priority = ?9 AND preemptable = ?10 AND reservation_id IS ?11 AND holds_slot = 1")
#: What the exact paths (allocate's general case, reserve) decide on: the agent's limits
#: from its totals row, and what its allocations hold summed from their rows, not the
#: running sums (which the fast path's stricter check uses): float rounding in those
#: sums can never refuse what fits. ``{first}`` adds leading columns of the totals row.
_EXACT_TOTALS = (
    "SELECT {first}s.cpu, s.memory, s.disk, s.network, t.cpu_limit, t.memory_limit, "
    "t.disk_limit, t.network_limit FROM holdings t, (SELECT TOTAL(cpu_cores) AS cpu, "
    "TOTAL(memory_mb) AS memory, TOTAL(disk_mb) AS disk, TOTAL(network_mbps) AS network "
    "FROM holdings WHERE agent_id = ?1 AND task_id <> '') s "
    "WHERE t.agent_id = ?1 AND t.task_id = ''"
)

#: Write an allocation into the row of a task that holds its slot (the general path
#: never inserts a row with an allocation: see _ALLOCATE).
_WRITE_ALLOCATION = (
    "UPDATE holdings SET created_at = ?, cpu_cores = ?, memory_mb = ?, disk_mb = ?, "
    "network_mbps = ?, priority = ?, preemptable = ?, reservation_id = ?, holds_slot = ? "
    "WHERE agent_id = ? AND task_id = ?"
)

def _allocation_from(agent_id: str, task_id: str, row: Sequence[Any]) -> Allocation:
    """The allocation stored in a task row (``row``: :data:`_ALLOCATION_COLUMNS`)."""
    created_at, cpu, memory, disk, network, priority, preemptable, reservation_id, holds = row
    return stored_allocation(agent_id, task_id, created_at, cpu, memory, disk, network,
                             priority, preemptable, reservation_id, holds)


def migrations() -> list[tuple[int, str]]:
    """The packaged schema migrations as (version, SQL), in order."""
    found = []
    for entry in resources.files(_MIGRATIONS).iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(found)


class SQLiteStore(Store):
    """The Store contract on one SQLite file (WAL, busy timeout, versioned schema)."""

    BUSY_TIMEOUT_MS = 30_000
    #: Calls are short, and a worker thread of the same process would contend with the
    #: event loop for SQLite's write lock (each wait costs a >= 1 ms busy-handler sleep),
    #: so async callers call it inline.
    blocking = False

    def __init__(self, url: str) -> None:
        self.url = url
        self.path, options = sqlite_path(url)
        sync = options.get("synchronous", "normal").lower()
        if sync not in _SYNC_MODES:
            raise ConfigError(
                f"sqlite URL {url!r}: synchronous={sync!r} (expected normal, full or off)"
            )
        self._synchronous = _SYNC_MODES[sync]
        self._local = threading.local()
        # Allocations granted by allocate()'s common case, by (agent, task), for
        # release_allocation (see _RELEASE_GRANTED). Shared by the threads: single dict
        # operations are atomic; a stale or missing entry only costs the slower statement.
        self._granted = GrantedAllocations[tuple[Any, ...]]()
        self._all_connections: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create directory for {self.path}: {exc}") from exc
        self._migrate()

    # -- connections and transactions ---------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {self.BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite database {self.path}: {exc}") from exc
        with self._guard:
            self._all_connections.append(conn)
        return conn

    @property
    def _conn(self) -> sqlite3.Connection:
        # One connection per thread and per process: a forked child must not reuse
        # the parent's connection.
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or self._local.forks != generation():
            conn = self._connect()
            self._local.conn, self._local.cursor = conn, conn.cursor()
            self._local.forks = generation()
        return conn

    @property
    def _cursor(self) -> sqlite3.Cursor:
        """A cursor of this thread's connection, for the hot paths (a statement through
        ``Connection.execute`` makes a new cursor each time); each use consumes it
        before the next."""
        cursor: sqlite3.Cursor | None = getattr(self._local, "cursor", None)
        if cursor is None or self._local.forks != generation():
            self._conn  # noqa: B018 - opens this thread's connection and cursor
            cursor = self._local.cursor
        return cursor

    @contextlib.contextmanager
    def _tx(self, immediate: bool = True) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        if conn.in_transaction:  # inside batch(): the outer transaction commits
            yield conn
            return
        try:
            conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite {self.path}: {exc}") from exc
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise StoreError(f"SQLite {self.path}: commit failed: {exc}") from exc

    def _read(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return self._tx(immediate=False)

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Run the calls made inside in one write transaction (all or nothing)."""
        with self._tx():
            yield

    def _migrate(self) -> None:
        steps = migrations()
        latest = steps[-1][0]
        conn = self._conn
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > latest:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this devcrew "
                f"understands ({latest}); upgrade devcrew"
            )
        if version == latest:
            return
        lock_path = self.path.with_name(self.path.name + ".migrate.lock")
        with open(lock_path, "a+b") as lock:
            if fcntl is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, sql in steps:
                if number > version:
                    # One transaction per step, version bump included: a process
                    # killed mid-migration leaves the previous version, never half of one.
                    try:
                        conn.executescript(
                            f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {number};\nCOMMIT;"
                        )
                    except sqlite3.Error as exc:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise StoreError(
                            f"{self.path}: schema migration {number} failed: {exc}"
                        ) from exc

    def ping(self) -> bool:
        """Run a trivial query."""
        try:
            self._conn.execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite {self.path}: {exc}") from exc
        return True

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._guard:
            conns, self._all_connections = self._all_connections, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()

    # -- agents ------------------------------------------------------------------------
    @staticmethod
    def _agent_with_load(data: str, load: int) -> AgentRecord:
        agent = AgentRecord.model_validate_json(data)
        agent.__dict__["current_load"] = int(load)
        return agent

    @staticmethod
    def _agent(conn: sqlite3.Connection, data: str) -> AgentRecord:
        agent = AgentRecord.model_validate_json(data)
        tasks = [
            row[0]
            for row in conn.execute(
                "SELECT task_id FROM holdings WHERE agent_id = ? AND slot_at IS NOT NULL "
                "ORDER BY slot_at, task_id",
                (agent.agent_id,),
            )
        ]
        agent.__dict__.update(current_load=len(tasks), running_tasks=tasks)
        return agent

    @staticmethod
    def _write_agent(conn: sqlite3.Connection, agent: AgentRecord) -> None:
        conn.execute(
            "INSERT INTO agents (agent_id, agent_type, max_concurrent_tasks, data) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (agent_id) DO UPDATE SET "
            "agent_type = excluded.agent_type, "
            "max_concurrent_tasks = excluded.max_concurrent_tasks, data = excluded.data",
            (
                agent.agent_id,
                agent.agent_type,
                agent.max_concurrent_tasks,
                agent.model_dump_json(exclude=_DERIVED),
            ),
        )
        # The agent's totals row carries its limits, so allocating checks them in the
        # statement that allocates (see _ALLOCATE).
        cap = ceiling(agent.resource_limits)
        limits = (agent.max_concurrent_tasks, cap.cpu_cores, cap.memory_mb, cap.disk_mb,
                  cap.network_mbps, agent.agent_id)
        if conn.execute(
            "UPDATE holdings SET max_tasks = ?1, cpu_limit = ?2, memory_limit = ?3, "
            "disk_limit = ?4, network_limit = ?5 WHERE agent_id = ?6 AND task_id = ''",
            limits,
        ).rowcount == 0:
            # A new agent; its totals start from what it may hold already (allocations
            # outlive a deleted agent, and come back with it).
            conn.execute(
                "INSERT INTO holdings (agent_id, task_id, max_tasks, cpu_limit, "
                "memory_limit, disk_limit, network_limit, load, allocations, used_cpu, "
                "used_memory, used_disk, used_network, reservations) "
                "SELECT ?6, '', ?1, ?2, ?3, ?4, ?5, COUNT(slot_at), COUNT(created_at), "
                "TOTAL(cpu_cores), TOTAL(memory_mb), TOTAL(disk_mb), TOTAL(network_mbps), "
                "(SELECT COUNT(*) FROM reservations WHERE agent_id = ?6) "
                "FROM holdings WHERE agent_id = ?6",
                limits,
            )

    def put_agent(self, agent: AgentRecord) -> None:
        """Insert or replace an agent and its capability index, keeping its slots."""
        with self._tx() as conn:
            self._write_agent(conn, agent)
            conn.execute("DELETE FROM agent_capabilities WHERE agent_id = ?", (agent.agent_id,))
            conn.executemany(
                "INSERT INTO agent_capabilities (capability, agent_id) VALUES (?, ?)",
                [(cap, agent.agent_id) for cap in agent.capabilities],
            )

    def get_agent(self, agent_id: str) -> AgentRecord | None:
        """Return an agent with its load."""
        validate_id(agent_id, "agent_id")
        try:  # one statement, so one snapshot: the record, then its slots, oldest first
            rows = self._conn.execute(
                "SELECT 0, data, NULL, NULL FROM agents WHERE agent_id = ?1 UNION ALL "
                "SELECT 1, NULL, slot_at, task_id FROM holdings "
                "WHERE agent_id = ?1 AND slot_at IS NOT NULL ORDER BY 1, 3, 4",
                (agent_id,)).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite {self.path}: {exc}") from exc
        if not rows or rows[0][0] != 0:
            return None
        agent = AgentRecord.model_validate_json(rows[0][1])
        tasks = [row[3] for row in rows[1:]]
        agent.__dict__.update(current_load=len(tasks), running_tasks=tasks)
        return agent

    def update_agent(self, agent_id: str, changes: Mapping[str, Any]) -> AgentRecord | None:
        """Apply allowed changes to an agent in one transaction."""
        with self._tx() as conn:
            row = conn.execute("SELECT data FROM agents WHERE agent_id = ?", (agent_id,)).fetchone()
            if row is None:
                return None
            agent = apply_changes(AgentRecord.model_validate_json(row[0]), changes,
                                  AGENT_MUTABLE_FIELDS)
            self._write_agent(conn, agent)
            return self._agent(conn, agent.model_dump_json(exclude=_DERIVED))

    def delete_agent(self, agent_id: str,
                     expired_by: float | None = None) -> AgentRecord | None:
        """Remove an agent, its index entries and its slots (only if expired by
        ``expired_by``, if given), in one write transaction."""
        with self._tx() as conn:
            row = conn.execute("SELECT data FROM agents WHERE agent_id = ?", (agent_id,)).fetchone()
            if row is None:
                return None
            removed = self._agent(conn, row[0])
            if expired_by is not None and not removed.is_expired(expired_by):
                return None
            for table in ("agents", "agent_capabilities"):
                conn.execute(f"DELETE FROM {table} WHERE agent_id = ?", (agent_id,))  # noqa: S608
            # The totals row first, so the triggers have none to update. Slots go with
            # the agent; allocations outlive it (as they always have), without slots.
            conn.execute("DELETE FROM holdings WHERE agent_id = ? AND task_id = ''",
                         (agent_id,))
            conn.execute("DELETE FROM holdings WHERE agent_id = ? AND created_at IS NULL",
                         (agent_id,))
            conn.execute("UPDATE holdings SET slot_at = NULL WHERE agent_id = ? "
                         "AND slot_at IS NOT NULL", (agent_id,))
            return removed

    def list_agents(self, agent_type: str | None = None) -> list[AgentRecord]:
        """All agents, optionally of one type."""
        with self._read() as conn:
            where, params = _where({"agent_type": agent_type})
            rows = conn.execute(
                f"SELECT data, {_LOAD} FROM agents a{where} ORDER BY agent_id",  # noqa: S608
                params,
            ).fetchall()
            return [self._agent_with_load(data, load) for data, load in rows]

    def find_agents(
        self, capabilities: Sequence[str], agent_type: str | None = None
    ) -> list[AgentRecord]:
        """Agents having every capability, answered from the capability index."""
        caps = sorted(set(capabilities))
        if not caps:
            return self.list_agents(agent_type)
        marks = ", ".join("?" for _ in caps)
        sql = (
            f"SELECT a.data, {_LOAD} FROM agents a JOIN ("  # noqa: S608 - only '?' marks
            f"  SELECT agent_id FROM agent_capabilities WHERE capability IN ({marks})"
            "  GROUP BY agent_id HAVING COUNT(*) = ?"
            ") c ON c.agent_id = a.agent_id"
        )
        params: list[Any] = [*caps, len(caps)]
        if agent_type is not None:
            sql += " WHERE a.agent_type = ?"
            params.append(agent_type)
        with self._read() as conn:
            rows = conn.execute(sql + " ORDER BY a.agent_id", params).fetchall()
            return [self._agent_with_load(data, load) for data, load in rows]

    def acquire_slot(self, agent_id: str, task_id: str) -> SlotResult:
        """Take a slot in one write transaction."""
        return self.acquire_slots(agent_id, [task_id])[0]

    def acquire_slots(self, agent_id: str, task_ids: Sequence[str]) -> list[SlotResult]:
        """Take several slots on one agent in one write transaction."""
        for task_id in task_ids:
            validate_id(task_id, "task_id")
        with self._tx() as conn:
            row = conn.execute(
                "SELECT max_tasks, load FROM holdings WHERE agent_id = ? AND task_id = ''",
                (agent_id,),
            ).fetchone()
            if row is None:
                raise NotFoundError(f"agent {agent_id!r} is not registered")
            limit, load = int(row[0]), int(row[1])
            results, now = [], time.time()
            for task_id in task_ids:
                if load < limit:
                    # One statement when there is room: nothing changes exactly when the
                    # task holds its slot already (its row may hold an allocation only).
                    # The triggers count the slot in the agent's load.
                    held = conn.execute(
                        "INSERT INTO holdings (agent_id, task_id, slot_at) VALUES (?, ?, ?) "
                        "ON CONFLICT (agent_id, task_id) DO UPDATE "
                        "SET slot_at = excluded.slot_at WHERE slot_at IS NULL",
                        (agent_id, task_id, now),
                    ).rowcount == 0
                    if not held:
                        load += 1
                    acquired = True
                else:
                    held = acquired = conn.execute(
                        "SELECT 1 FROM holdings WHERE agent_id = ? AND task_id = ? "
                        "AND slot_at IS NOT NULL",
                        (agent_id, task_id),
                    ).fetchone() is not None
                results.append(SlotResult(acquired=acquired, already_held=held,
                                          current_load=load, max_concurrent_tasks=limit))
            return results

    def transfer_slots(self, moves: Sequence[tuple[str, str, str]]) -> list[bool]:
        """Hand slots on in one write transaction; a move is one UPDATE of the slot's row
        when that row holds only the slot and the receiving task holds nothing there."""
        for _, _, to_task in moves:
            validate_id(to_task, "task_id")
        results: list[bool] = []
        with self._tx() as conn:
            for agent_id, from_task, to_task in moves:
                try:
                    moved = conn.execute(
                        "UPDATE holdings SET task_id = ? WHERE agent_id = ? AND task_id = ? "
                        "AND slot_at IS NOT NULL AND created_at IS NULL",
                        (to_task, agent_id, from_task),
                    ).rowcount > 0
                except sqlite3.IntegrityError:  # to_task has a row there already
                    moved = False
                if not moved:
                    moved = self._move_slot(conn, agent_id, from_task, to_task)
                results.append(moved)
        return results

    def _move_slot(self, conn: sqlite3.Connection, agent_id: str, from_task: str,
                   to_task: str) -> bool:
        """transfer_slots' general case: either row may hold an allocation as well."""
        source = conn.execute(
            "SELECT slot_at FROM holdings WHERE agent_id = ? AND task_id = ? "
            "AND slot_at IS NOT NULL", (agent_id, from_task)).fetchone()
        if source is None:
            return False
        if from_task == to_task:
            return True
        target = conn.execute(
            "SELECT 1 FROM holdings WHERE agent_id = ? AND task_id = ? AND slot_at IS NOT NULL",
            (agent_id, to_task)).fetchone()
        self._release_in(conn, agent_id, from_task)
        if target is None:  # else to_task holds one already: from_task's is just freed
            conn.execute(
                "INSERT INTO holdings (agent_id, task_id, slot_at) VALUES (?, ?, ?) "
                "ON CONFLICT (agent_id, task_id) DO UPDATE SET slot_at = excluded.slot_at",
                (agent_id, to_task, source[0]))
        return True

    @staticmethod
    def _release_in(conn: sqlite3.Connection, agent_id: str, task_id: str) -> bool:
        # The row goes when the slot is all it holds; else it keeps its allocation. (The
        # totals row never matches: its slot_at is NULL.)
        if conn.execute(
            "DELETE FROM holdings WHERE agent_id = ? AND task_id = ? "
            "AND slot_at IS NOT NULL AND created_at IS NULL", (agent_id, task_id),
        ).rowcount > 0:
            return True
        return conn.execute(
            "UPDATE holdings SET slot_at = NULL WHERE agent_id = ? AND task_id = ? "
            "AND slot_at IS NOT NULL", (agent_id, task_id),
        ).rowcount > 0

    def release_slot(self, agent_id: str, task_id: str) -> bool:
        """Free a slot; idempotent."""
        return self.release_slots([(agent_id, task_id)])[0]

    def release_slots(self, slots: Sequence[tuple[str, str]]) -> list[bool]:
        """Free several slots in one write transaction."""
        freed: list[bool] = []
        with self._tx() as conn:
            for agent_id, task_id in slots:
                freed.append(self._release_in(conn, agent_id, task_id))
        return freed

    # -- delegations ------------------------------------------------------------------------
    def delegate(self, record: DelegationRecord,
                 audit: AuditRecord | None = None) -> SlotResult:
        """Take the slot and store the record (and audit) in one write transaction."""
        with self._tx() as conn:
            current = conn.execute(
                "SELECT agent_id FROM delegations WHERE task_id = ? AND status = ?",
                (record.task_id, DelegationStatus.ACTIVE.value),
            ).fetchone()
            if current is not None and current[0] != record.agent_id:
                raise already_delegated(record.task_id, current[0])
            result = self.acquire_slots(record.agent_id, [record.task_id])[0]
            if result.acquired:
                conn.execute(
                    "INSERT OR REPLACE INTO delegations (task_id, agent_id, status, "
                    "delegated_at, data) VALUES (?, ?, ?, ?, ?)",
                    (record.task_id, record.agent_id, record.status.value,
                     record.delegated_at, record.model_dump_json()),
                )
                if audit is not None:
                    self._append_audit(conn, [audit])
            return result

    def complete_delegation(
        self, agent_id: str, task_id: str, completed_at: float,
        audit: AuditRecord | None = None,
    ) -> tuple[DelegationRecord | None, bool]:
        """Free the slot and mark the delegation completed in one write transaction."""
        with self._tx() as conn:
            row = conn.execute(
                "SELECT data FROM delegations WHERE task_id = ? AND agent_id = ?",
                (task_id, agent_id),
            ).fetchone()
            if row is None:
                return None, False
            record = DelegationRecord.model_validate_json(row[0])
            if record.status is DelegationStatus.COMPLETED:
                return record, False
            self._release_in(conn, agent_id, task_id)
            done = record.model_copy(update={"status": DelegationStatus.COMPLETED,
                                             "completed_at": completed_at})
            conn.execute("UPDATE delegations SET status = ?, data = ? WHERE task_id = ?",
                         (done.status.value, done.model_dump_json(), task_id))
            if audit is not None:
                self._append_audit(conn, [audit])
            return done, True

    def get_delegation(self, task_id: str) -> DelegationRecord | None:
        """The latest delegation of a task."""
        validate_id(task_id, "task_id")
        with self._read() as conn:
            row = conn.execute("SELECT data FROM delegations WHERE task_id = ?",
                               (task_id,)).fetchone()
        return None if row is None else DelegationRecord.model_validate_json(row[0])

    def list_delegations(
        self, agent_id: str | None = None, status: str | None = None
    ) -> list[DelegationRecord]:
        """Delegations, oldest first."""
        validate_optional_id(agent_id, "agent_id")
        where, params = _where({"agent_id": agent_id, "status": status})
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT data FROM delegations{where} ORDER BY delegated_at, task_id",  # noqa: S608
                params,
            ).fetchall()
        return [DelegationRecord.model_validate_json(r[0]) for r in rows]

    # -- resources -----------------------------------------------------------------------
    def allocate(self, allocation: Allocation, now: float) -> Allocation | None:
        """Check capacity, take the slot and record the allocation atomically: one
        statement in the common case (see ``_ALLOCATE``), else one write transaction."""
        # On the path of every pair, under the GIL the client threads share: the fields
        # from the model's dict; exact strs matching the ID alphabet need no validate_id.
        # (A copy: what is written and what is granted are the same values, whatever
        # another thread does to the caller's object meanwhile.)
        fields = allocation.__dict__.copy()
        agent_id, task_id = fields["agent_id"], fields["task_id"]
        if type(agent_id) is not str or type(task_id) is not str \
                or _match_id(agent_id) is None or _match_id(task_id) is None:
            validate_id(agent_id, "agent_id")
            validate_id(task_id, "task_id")
        parameters = (agent_id, task_id, time.time(), fields["created_at"],
                      fields["cpu_cores"], fields["memory_mb"], fields["disk_mb"],
                      fields["network_mbps"], int(fields["priority"]),
                      int(fields["preemptable"]), fields["reservation_id"])
        try:
            taken = self._cursor.execute(_ALLOCATE, parameters).rowcount
        except sqlite3.IntegrityError:  # the insert trigger's check: see _ALLOCATE
            taken = 0
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite {self.path}: {exc}") from exc
        if taken:
            # Kept with the parameters, which _RELEASE_GRANTED takes as they are.
            return self._granted.grant(fields, allocation.__pydantic_fields_set__, parameters)
        # Nothing was written: the task holds something there already, or the agent has
        # reservations, is full, or unknown. Decide with everything read.
        with self._tx() as conn:
            return self._allocate_in(conn, allocation, now, victims=())

    def preempt_and_allocate(self, allocation: Allocation, victims: Sequence[str],
                             now: float) -> Allocation | None:
        """Remove the victims and allocate in one transaction, all or nothing."""
        validate_id(allocation.task_id, "task_id")
        with self._tx() as conn:
            for victim in victims:
                if conn.execute(
                    "SELECT 1 FROM holdings WHERE agent_id = ? AND task_id = ? "
                    "AND created_at IS NOT NULL", (allocation.agent_id, victim),
                ).fetchone() is None:
                    return None
            return self._allocate_in(conn, allocation, now, victims=victims)

    def _allocate_in(self, conn: sqlite3.Connection, allocation: Allocation, now: float,
                     victims: Sequence[str]) -> Allocation | None:
        """allocate's general case, inside the caller's write transaction: the task may
        hold its slot or an allocation already, reservations count (one may be
        redeemed), victims' allocations do not (they are removed when it fits)."""
        agent_id, task_id = allocation.agent_id, allocation.task_id
        totals = conn.execute(_EXACT_TOTALS.format(first="t.load, t.max_tasks, "),
                              (agent_id,)).fetchone()
        if totals is None:
            raise NotFoundError(f"agent {agent_id!r} is not registered")
        mine = conn.execute(
            f"SELECT slot_at IS NOT NULL, {_ALLOCATION_COLUMNS} FROM holdings "  # noqa: S608
            "WHERE agent_id = ? AND task_id = ?", (agent_id, task_id),
        ).fetchone()
        if mine is not None and mine[1] is not None:  # allocated already: unchanged
            return _allocation_from(agent_id, task_id, mine[1:])
        has_slot = mine is not None and bool(mine[0])
        load, limit = int(totals[0]), int(totals[1])
        held, cap = list(totals[2:6]), totals[6:10]
        gone = sorted(set(victims))
        freed = 0
        if gone:
            marks = ", ".join("?" * len(gone))  # only placeholders are formatted in
            for *amounts, frees_slot in conn.execute(
                "SELECT cpu_cores, memory_mb, disk_mb, network_mbps, "  # noqa: S608
                "holds_slot AND slot_at IS NOT NULL FROM holdings WHERE agent_id = ? "
                f"AND created_at IS NOT NULL AND task_id IN ({marks})", (agent_id, *gone),
            ):
                held = [h - a for h, a in zip(held, amounts, strict=True)]
                freed += bool(frees_slot)
        # Leaving out the named reservation whatever its state is the same as leaving
        # out only a redeemable one: an expired one or another agent's is not summed.
        reserved = conn.execute(
            "SELECT TOTAL(cpu_cores), TOTAL(memory_mb), TOTAL(disk_mb), TOTAL(network_mbps) "
            "FROM reservations WHERE agent_id = ? AND expires_at > ? "
            "AND reservation_id IS NOT ?", (agent_id, now, allocation.reservation_id),
        ).fetchone()
        # base.fits on plain floats: building ResourceAmounts models here cost more than
        # the check itself.
        for have, extra, wanted, most in zip(
                held, reserved, (allocation.cpu_cores, allocation.memory_mb,
                                 allocation.disk_mb, allocation.network_mbps),
                cap, strict=True):
            if have + extra + wanted > most + _FIT_EPS:
                return None
        if not has_slot and load - freed >= limit:
            return None
        for victim in gone:
            self._release_allocation_in(conn, agent_id, victim)
        if allocation.reservation_id is not None:
            conn.execute(
                "DELETE FROM reservations WHERE reservation_id = ? AND agent_id = ? "
                "AND expires_at > ?", (allocation.reservation_id, agent_id, now))
        if not has_slot:
            conn.execute("INSERT INTO holdings (agent_id, task_id, slot_at) VALUES (?, ?, ?) "
                         "ON CONFLICT (agent_id, task_id) DO UPDATE "
                         "SET slot_at = excluded.slot_at", (agent_id, task_id, time.time()))
        stored = holding_slot(allocation, not has_slot)
        conn.execute(_WRITE_ALLOCATION, (
            stored.created_at, stored.cpu_cores, stored.memory_mb, stored.disk_mb,
            stored.network_mbps, int(stored.priority), int(stored.preemptable),
            stored.reservation_id, int(stored.holds_slot), agent_id, task_id,
        ))
        return stored

    def release_allocation(self, agent_id: str, task_id: str) -> Allocation | None:
        """Remove an allocation (and free the slot it holds) atomically: one statement
        in the common cases (``_RELEASE_GRANTED``, ``_RELEASE``), else one write
        transaction. An allocation this store granted comes back as the same object."""
        granted, parameters = self._granted.take_for_release(agent_id, task_id)
        try:
            cursor = self._cursor
            if parameters is not None \
                    and cursor.execute(_RELEASE_GRANTED, parameters).rowcount:
                return granted
            validate_id(agent_id, "agent_id")
            validate_id(task_id, "task_id")
            rows = cursor.execute(_RELEASE, (agent_id, task_id)).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite {self.path}: {exc}") from exc
        if rows:
            released = _allocation_from(agent_id, task_id, rows[0])
            # A granted object changed since (or whose note is gone) that still equals
            # the row is the one this store handed out.
            return granted if granted == released else released
        # None, or the task holds its slot apart from the allocation (it keeps it).
        with self._tx() as conn:
            return self._release_allocation_in(conn, agent_id, task_id)

    def _release_allocation_in(self, conn: sqlite3.Connection, agent_id: str,
                               task_id: str) -> Allocation | None:
        row = conn.execute(
            f"SELECT slot_at IS NOT NULL, {_ALLOCATION_COLUMNS} FROM holdings "  # noqa: S608
            "WHERE agent_id = ? AND task_id = ? AND created_at IS NOT NULL",
            (agent_id, task_id),
        ).fetchone()
        if row is None:
            return None
        gone = _allocation_from(agent_id, task_id, row[1:])
        if gone.holds_slot or not row[0]:  # the slot goes with it, or there is none
            conn.execute("DELETE FROM holdings WHERE agent_id = ? AND task_id = ?",
                         (agent_id, task_id))
        else:  # the task keeps the slot it held before it allocated
            conn.execute(
                "UPDATE holdings SET created_at = NULL, cpu_cores = 0, memory_mb = 0, "
                "disk_mb = 0, network_mbps = 0, priority = NULL, preemptable = NULL, "
                "reservation_id = NULL, holds_slot = NULL WHERE agent_id = ? AND task_id = ?",
                (agent_id, task_id))
        return gone

    def put_wait(self, wait: WaitRecord) -> None:
        """Record a waiting request."""
        validate_id(wait.agent_id, "agent_id")
        validate_id(wait.task_id, "task_id")
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO waits (agent_id, task_id, since, data) "
                "VALUES (?, ?, ?, ?)",
                (wait.agent_id, wait.task_id, wait.since, wait.model_dump_json()))

    def delete_wait(self, agent_id: str, task_id: str) -> bool:
        """Forget a waiting request."""
        with self._tx() as conn:
            return conn.execute("DELETE FROM waits WHERE agent_id = ? AND task_id = ?",
                                (agent_id, task_id)).rowcount > 0

    def list_waits(self, agent_id: str | None = None) -> list[WaitRecord]:
        """Waiting requests, oldest first."""
        validate_optional_id(agent_id, "agent_id")
        where, params = _where({"agent_id": agent_id})
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT data FROM waits{where} ORDER BY since, agent_id, task_id",  # noqa: S608
                params).fetchall()
        return [WaitRecord.model_validate_json(r[0]) for r in rows]

    def list_allocations(self, agent_id: str | None = None) -> list[Allocation]:
        """Allocations by creation time."""
        validate_optional_id(agent_id, "agent_id")
        mine, params = ("", []) if agent_id is None else (" AND agent_id = ?", [agent_id])
        try:  # one statement reads one snapshot: no transaction needed
            rows = self._conn.execute(
                f"SELECT agent_id, task_id, {_ALLOCATION_COLUMNS} FROM holdings "  # noqa: S608
                f"WHERE created_at IS NOT NULL{mine} ORDER BY created_at, agent_id, task_id",
                params,
            ).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite {self.path}: {exc}") from exc
        return [_allocation_from(row[0], row[1], row[2:]) for row in rows]

    def reserve(self, reservation: Reservation, now: float) -> bool:
        """Check capacity and record the reservation in one write transaction."""
        with self._tx() as conn:
            totals = conn.execute(_EXACT_TOTALS.format(first=""),
                                  (reservation.agent_id,)).fetchone()
            if totals is None:
                raise NotFoundError(f"agent {reservation.agent_id!r} is not registered")
            exists = conn.execute(
                "SELECT 1 FROM reservations WHERE reservation_id = ?",
                (reservation.reservation_id,),
            ).fetchone()
            if exists:
                raise StoreError(f"reservation {reservation.reservation_id!r} exists already")
            reserved = conn.execute(
                "SELECT TOTAL(cpu_cores), TOTAL(memory_mb), TOTAL(disk_mb), "
                "TOTAL(network_mbps) FROM reservations WHERE agent_id = ? AND expires_at > ?",
                (reservation.agent_id, now),
            ).fetchone()
            wanted = (reservation.cpu_cores, reservation.memory_mb, reservation.disk_mb,
                      reservation.network_mbps)
            if any(have + extra + want > most + _FIT_EPS for have, extra, want, most
                   in zip(totals[:4], reserved, wanted, totals[4:], strict=True)):
                return False
            conn.execute(
                "INSERT INTO reservations (reservation_id, agent_id, expires_at, created_at, "
                "cpu_cores, memory_mb, disk_mb, network_mbps, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    reservation.reservation_id,
                    reservation.agent_id,
                    reservation.expires_at,
                    reservation.created_at,
                    *(getattr(reservation, d) for d in _DIMS),
                    reservation.model_dump_json(),
                ),
            )
            return True

    def get_reservation(self, reservation_id: str) -> Reservation | None:
        """Return a reservation."""
        validate_id(reservation_id, "reservation_id")
        with self._read() as conn:
            row = conn.execute(
                "SELECT data FROM reservations WHERE reservation_id = ?", (reservation_id,)
            ).fetchone()
        return None if row is None else Reservation.model_validate_json(row[0])

    def cancel_reservation(self, reservation_id: str) -> bool:
        """Remove a reservation."""
        with self._tx() as conn:
            cur = conn.execute(
                "DELETE FROM reservations WHERE reservation_id = ?", (reservation_id,)
            )
            return cur.rowcount > 0

    def list_reservations(self, agent_id: str | None = None) -> list[Reservation]:
        """Reservations by creation time."""
        validate_optional_id(agent_id, "agent_id")
        where, params = _where({"agent_id": agent_id})
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT data FROM reservations{where} ORDER BY created_at, reservation_id", params  # noqa: S608
            ).fetchall()
        return [Reservation.model_validate_json(r[0]) for r in rows]

    def expire_reservations(self, now: float) -> list[Reservation]:
        """Drop reservations that have expired."""
        with self._tx() as conn:
            rows = conn.execute(
                "DELETE FROM reservations WHERE expires_at <= ? RETURNING data", (now,)
            ).fetchall()
        gone = [Reservation.model_validate_json(r[0]) for r in rows]
        return sorted(gone, key=lambda r: (r.created_at, r.reservation_id))

    # -- workflows and runs ----------------------------------------------------------------
    def put_workflow(self, workflow: WorkflowDefinition) -> None:
        """Insert or replace a workflow definition."""
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO workflows (workflow_id, data) VALUES (?, ?)",
                (workflow.workflow_id, workflow.model_dump_json()),
            )

    def get_workflow(self, workflow_id: str) -> WorkflowDefinition | None:
        """Return a workflow definition."""
        validate_id(workflow_id, "workflow_id")
        with self._read() as conn:
            row = conn.execute(
                "SELECT data FROM workflows WHERE workflow_id = ?", (workflow_id,)
            ).fetchone()
        return None if row is None else WorkflowDefinition.model_validate_json(row[0])

    def list_workflows(self) -> list[WorkflowDefinition]:
        """All workflow definitions."""
        with self._read() as conn:
            rows = conn.execute("SELECT data FROM workflows ORDER BY workflow_id").fetchall()
        return [WorkflowDefinition.model_validate_json(r[0]) for r in rows]

    def delete_workflow(self, workflow_id: str) -> bool:
        """Remove a workflow definition."""
        with self._tx() as conn:
            cur = conn.execute("DELETE FROM workflows WHERE workflow_id = ?", (workflow_id,))
            return cur.rowcount > 0

    def put_snapshot(self, snapshot_id: str, document: str) -> None:
        """Keep a document; an existing ID keeps its first document."""
        validate_id(snapshot_id, "snapshot_id")
        with self._tx() as conn:
            conn.execute("INSERT OR IGNORE INTO snapshots (snapshot_id, data) VALUES (?, ?)",
                         (snapshot_id, document))

    def get_snapshot(self, snapshot_id: str) -> str | None:
        """A stored document."""
        validate_id(snapshot_id, "snapshot_id")
        with self._read() as conn:
            row = conn.execute("SELECT data FROM snapshots WHERE snapshot_id = ?",
                               (snapshot_id,)).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def _write_run(conn: sqlite3.Connection, run: RunRecord, insert: bool) -> None:
        verb = "INSERT" if insert else "INSERT OR REPLACE"
        conn.execute(
            f"{verb} INTO runs (run_id, workflow_id, status, created_at, cancel_requested, "
            "data) VALUES (?, ?, ?, ?, ?, ?)",
            (run.run_id, run.workflow_id, run.status.value, run.created_at,
             int(run.cancel_requested), run.model_dump_json()),
        )

    def create_run(self, run: RunRecord) -> None:
        """Insert a new run."""
        try:
            with self._tx() as conn:
                self._write_run(conn, run, insert=True)
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"run {run.run_id!r} exists already") from exc

    def cancel_requested(self, run_id: str) -> bool | None:
        """Whether a cancel was requested, from its own column (the data is not read)."""
        validate_id(run_id, "run_id")
        with self._read() as conn:
            row = conn.execute(
                "SELECT cancel_requested FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
        return None if row is None else bool(row[0])

    def get_run(self, run_id: str) -> RunRecord | None:
        """Return a run."""
        validate_id(run_id, "run_id")
        with self._read() as conn:
            row = conn.execute("SELECT data FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else RunRecord.model_validate_json(row[0])

    def update_run(self, run_id: str, changes: Mapping[str, Any]) -> RunRecord | None:
        """Apply allowed changes to a run in one transaction."""
        with self._tx() as conn:
            row = conn.execute("SELECT data FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                return None
            run = apply_changes(RunRecord.model_validate_json(row[0]), changes, RUN_MUTABLE_FIELDS)
            self._write_run(conn, run, insert=False)
            return run

    def list_runs(
        self, workflow_id: str | None = None, status: str | None = None
    ) -> list[RunRecord]:
        """Runs, oldest first."""
        validate_optional_id(workflow_id, "workflow_id")
        where, params = _where({"workflow_id": workflow_id, "status": status})
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT data FROM runs{where} ORDER BY created_at, run_id", params  # noqa: S608
            ).fetchall()
        return [RunRecord.model_validate_json(r[0]) for r in rows]

    def put_task_states(self, states: Sequence[TaskState]) -> None:
        """Upsert many task states in one transaction (group commit)."""
        if not states:
            return
        with self._tx() as conn:
            self._put_states(conn, states)

    @staticmethod
    def _put_states(conn: sqlite3.Connection, states: Sequence[TaskState]) -> None:
        conn.executemany(
            "INSERT OR REPLACE INTO task_states (run_id, task_id, data) VALUES (?, ?, ?)",
            [(s.run_id, s.task_id, s.model_dump_json()) for s in states],
        )

    def write_batch(self, states: Sequence[TaskState], audit: Sequence[AuditRecord],
                    events: Sequence[Event]) -> None:
        """Task states, audit records and events in one transaction."""
        with self._tx() as conn:
            self._put_states(conn, states)
            self._append_audit(conn, audit)
            self._publish(conn, events)

    def get_task_states(self, run_id: str) -> list[TaskState]:
        """Task states of a run."""
        validate_id(run_id, "run_id")
        with self._read() as conn:
            rows = conn.execute(
                "SELECT data FROM task_states WHERE run_id = ? ORDER BY task_id", (run_id,)
            ).fetchall()
        return [TaskState.model_validate_json(r[0]) for r in rows]

    # -- handoffs ----------------------------------------------------------------------------
    def put_handoff(self, handoff: HandoffRecord, context: Mapping[str, Any] | None) -> None:
        """Insert or replace a handoff and its context."""
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO handoffs (handoff_id, workflow_id, created_at, data, "
                "context) VALUES (?, ?, ?, ?, ?)",
                (
                    handoff.handoff_id,
                    handoff.workflow_id,
                    handoff.created_at,
                    handoff.model_dump_json(),
                    None if context is None else json.dumps(dict(context)),
                ),
            )

    def get_handoff(self, handoff_id: str) -> HandoffRecord | None:
        """Return a handoff."""
        validate_id(handoff_id, "handoff_id")
        with self._read() as conn:
            row = conn.execute(
                "SELECT data FROM handoffs WHERE handoff_id = ?", (handoff_id,)
            ).fetchone()
        return None if row is None else HandoffRecord.model_validate_json(row[0])

    def update_handoff(self, handoff_id: str, changes: Mapping[str, Any]) -> HandoffRecord | None:
        """Apply allowed changes to a handoff in one transaction."""
        with self._tx() as conn:
            row = conn.execute(
                "SELECT data FROM handoffs WHERE handoff_id = ?", (handoff_id,)
            ).fetchone()
            if row is None:
                return None
            handoff = apply_changes(
                HandoffRecord.model_validate_json(row[0]), changes, HANDOFF_MUTABLE_FIELDS
            )
            conn.execute(
                "UPDATE handoffs SET data = ? WHERE handoff_id = ?",
                (handoff.model_dump_json(), handoff_id),
            )
            return handoff

    def get_handoff_context(self, handoff_id: str) -> dict[str, Any] | None:
        """Return the context of a handoff."""
        validate_id(handoff_id, "handoff_id")
        with self._read() as conn:
            row = conn.execute(
                "SELECT context FROM handoffs WHERE handoff_id = ?", (handoff_id,)
            ).fetchone()
        if row is None or row[0] is None:
            return None
        context: dict[str, Any] = json.loads(row[0])
        return context

    def list_handoffs(self, workflow_id: str | None = None) -> list[HandoffRecord]:
        """Handoffs, oldest first."""
        validate_optional_id(workflow_id, "workflow_id")
        where, params = _where({"workflow_id": workflow_id})
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT data FROM handoffs{where} ORDER BY created_at, handoff_id", params  # noqa: S608
            ).fetchall()
        return [HandoffRecord.model_validate_json(r[0]) for r in rows]

    # -- audit and events ----------------------------------------------------------------------
    @staticmethod
    def _append_numbered(
        conn: sqlite3.Connection, sql: str, rows: Sequence[tuple[Any, ...]]
    ) -> list[int]:
        """Insert rows one by one (inside the caller's transaction); return their seqs."""
        return [int(conn.execute(sql, row).lastrowid or 0) for row in rows]

    def _list_numbered(
        self, table: str, filters: Mapping[str, Any], after: int, limit: int
    ) -> list[tuple[int, dict[str, Any]]]:
        """(seq, record dict) of ``table`` rows after ``after`` matching ``filters``."""
        where, params = _where({"seq >": after, **filters})
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT seq, data FROM {table}{where} ORDER BY seq LIMIT ?",  # noqa: S608
                [*params, limit],
            ).fetchall()
        return [(seq, json.loads(data)) for seq, data in rows]

    def append_audit(self, records: Sequence[AuditRecord]) -> list[int]:
        """Append audit records in one transaction."""
        with self._tx() as conn:
            return self._append_audit(conn, records)

    def _append_audit(self, conn: sqlite3.Connection,
                      records: Sequence[AuditRecord]) -> list[int]:
        return self._append_numbered(
            conn,
            "INSERT INTO audit (kind, workflow_id, created_at, data) VALUES (?, ?, ?, ?)",
            [(r.kind, r.workflow_id, r.created_at, r.model_dump_json(exclude={"seq"}))
             for r in records],
        )

    def list_audit(
        self,
        workflow_id: str | None = None,
        kind: str | None = None,
        after: int = 0,
        limit: int = 1000,
    ) -> list[AuditRecord]:
        """Audit records after ``after``."""
        validate_optional_id(workflow_id, "workflow_id")
        rows = self._list_numbered("audit", {"workflow_id": workflow_id, "kind": kind},
                                   after, limit)
        return [AuditRecord.model_validate({**data, "seq": seq}) for seq, data in rows]

    def publish_events(self, events: Sequence[Event]) -> list[int]:
        """Append events in one transaction."""
        with self._tx() as conn:
            return self._publish(conn, events)

    def _publish(self, conn: sqlite3.Connection, events: Sequence[Event]) -> list[int]:
        return self._append_numbered(
            conn,
            "INSERT INTO events (kind, created_at, data) VALUES (?, ?, ?)",
            [(e.kind, e.created_at, e.model_dump_json(exclude={"seq"})) for e in events],
        )

    def list_events(
        self, after: int = 0, kind: str | None = None, limit: int = 1000
    ) -> list[Event]:
        """Events after ``after``."""
        rows = self._list_numbered("events", {"kind": kind}, after, limit)
        return [Event.model_validate({**data, "seq": seq}) for seq, data in rows]

def open_sqlite_store(url: str, settings: object = None) -> SQLiteStore:
    """Store factory for ``sqlite:///path/to/file.db``."""
    return SQLiteStore(url)
