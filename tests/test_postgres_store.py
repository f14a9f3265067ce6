"""What only the PostgreSQL backend promises, against a real server (``postgres_server``).

The Store contract itself runs on PostgreSQL through ``store_backends.BACKENDS``; these
tests cover schema migrations, the database-enforced audit trail, connection errors,
pooling, fork safety and batches.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import random
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg2
import pytest

from devcrew_core.config import load_settings
from devcrew_core.errors import (
    ConfigError,
    DefinitionError,
    NotFoundError,
    StoreError,
    UsageError,
)
from devcrew_core.models import ResourceLimits
from devcrew_core.stores import open_store
from devcrew_core.stores.records import (
    AgentRecord,
    Allocation,
    AuditRecord,
    DelegationRecord,
    HandoffRecord,
    Reservation,
    RunRecord,
)
from devcrew_postgres.fastpaths import FAST_ALLOCATE
from devcrew_postgres.migrations import migrations
from devcrew_postgres.store import PostgresStore

from postgres_server import PostgresServer

pytestmark = pytest.mark.postgres

MALICIOUS_IDS = ["a:b", "*", "'; DROP TABLE agents; --"]


@pytest.fixture
def schema(postgres_server: PostgresServer) -> str:
    """A fresh, empty schema."""
    return postgres_server.fresh_schema()


@pytest.fixture
def store(postgres_server: PostgresServer, schema: str) -> Iterator[PostgresStore]:
    """A store confined to a fresh schema."""
    with PostgresStore(postgres_server.url(schema=schema)) as opened:
        yield opened


def raw(server: PostgresServer, schema: str) -> Any:
    """A plain psycopg2 connection as the store's own role (the tables' owner)."""
    conn = psycopg2.connect(server.url(schema=schema))
    conn.autocommit = True
    return conn


def agent(agent_id: str = "a1", max_tasks: int = 2) -> AgentRecord:
    return AgentRecord(agent_id=agent_id, agent_type="Worker", capabilities=["python"],
                       max_concurrent_tasks=max_tasks)


# -- opening, URLs and errors -------------------------------------------------------------
def test_opened_through_the_plugin_by_both_schemes(postgres_server: PostgresServer,
                                                   schema: str) -> None:
    url = postgres_server.url(schema=schema)
    for scheme_url in (url, url.replace("postgresql://", "postgres://", 1)):
        with open_store(scheme_url) as store:
            assert isinstance(store, PostgresStore)
            assert store.blocking is True and store.ping() is True


def test_url_is_kept_with_the_password_masked(store: PostgresStore,
                                              postgres_server: PostgresServer) -> None:
    assert postgres_server.password not in store.url
    assert "devcrew:********@" in store.url


def test_password_from_settings_when_the_url_has_none(postgres_server: PostgresServer,
                                                      schema: str) -> None:
    url = postgres_server.url(schema=schema).replace(f":{postgres_server.password}@", "@")
    settings = load_settings(environ={"POSTGRES_PASSWORD": postgres_server.password})
    with PostgresStore(url, settings) as store:
        assert store.ping()
    with pytest.raises(StoreError, match="password"):
        PostgresStore(url, load_settings(environ={}))


def test_unreachable_server_is_a_store_error_with_the_password_masked() -> None:
    secret = "s3cret-Pa55"
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://devcrew:{secret}@127.0.0.1:{port}/devcrew"
    with pytest.raises(StoreError) as caught:
        PostgresStore(url)
    message = str(caught.value)
    assert secret not in message
    assert f"postgresql://devcrew:********@127.0.0.1:{port}/devcrew" in message
    assert "is the server running" in message


def test_wrong_password_is_a_clear_store_error(postgres_server: PostgresServer) -> None:
    url = postgres_server.url(password="not-the-password")
    with pytest.raises(StoreError, match="password authentication failed") as caught:
        PostgresStore(url)
    assert "not-the-password" not in str(caught.value)
    assert postgres_server.password not in str(caught.value)
    assert "check the user and password" in str(caught.value)


@pytest.mark.parametrize("url", [
    "postgresql://devcrew:se%ZZcret@127.0.0.1/devcrew",  # libpq quotes the bad token
    "postgresql://devcrew:s3cret-Pa55@127.0.0.1/devcrew?bogus=1",
    "postgresql://devcrew:s3cret-Pa55@[::1/devcrew",  # libpq quotes the whole URL
])
def test_a_malformed_url_is_a_config_error_without_the_password(url: str) -> None:
    with pytest.raises(ConfigError, match="invalid PostgreSQL URL") as caught:
        PostgresStore(url)
    assert "cret" not in str(caught.value) and "********" in str(caught.value)


def test_missing_database_is_a_clear_store_error(postgres_server: PostgresServer) -> None:
    with pytest.raises(StoreError, match='database "nowhere" does not exist'):
        PostgresStore(postgres_server.url(database="nowhere"))


def test_a_search_path_without_a_schema_is_refused(postgres_server: PostgresServer) -> None:
    with pytest.raises(StoreError, match="no schema"):
        PostgresStore(postgres_server.url(schema="does_not_exist"))


# -- identifiers ---------------------------------------------------------------------------
@pytest.mark.parametrize("bad", MALICIOUS_IDS)
def test_malicious_ids_never_reach_a_query(store: PostgresStore, bad: str,
                                           postgres_server: PostgresServer, schema: str) -> None:
    store.put_agent(agent())
    calls = [
        lambda: store.get_agent(bad),
        lambda: store.delete_agent(bad),
        lambda: store.update_agent(bad, {"available": False}),
        lambda: store.acquire_slot("a1", bad),
        lambda: store.acquire_slot(bad, "t1"),
        lambda: store.release_slot("a1", bad),
        lambda: store.transfer_slots([("a1", "t1", bad)]),
        lambda: store.list_agents(bad),
        lambda: store.get_run(bad),
        lambda: store.update_run(bad, {"status": "failed"}),
        lambda: store.cancel_requested(bad),
        lambda: store.get_task_states(bad),
        lambda: store.get_handoff(bad),
        lambda: store.get_reservation(bad),
        lambda: store.release_allocation("a1", bad),
        lambda: store.put_snapshot(bad, "{}"),
        lambda: store.list_audit(workflow_id=bad),
    ]
    for call in calls:
        with pytest.raises(DefinitionError, match="invalid ID"):
            call()
    with pytest.raises(ValueError, match="invalid ID"):
        AgentRecord(agent_id=bad, agent_type="Worker", capabilities=[])
    assert [a.agent_id for a in store.list_agents()] == ["a1"]
    with raw(postgres_server, schema) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM agents")
        assert cur.fetchone() == (1,)


# -- schema and migrations -----------------------------------------------------------------
def _open_when_told(url: str, go: Any, results: Any) -> None:
    go.wait(30)
    try:
        with PostgresStore(url) as store:
            store.put_agent(agent(f"a{multiprocessing.current_process().pid}"))
        results.put("ok")
    except Exception as exc:  # reported to the test, which fails with it
        results.put(repr(exc))


def test_processes_opening_a_fresh_schema_at_once_migrate_it_once(
    postgres_server: PostgresServer, schema: str,
) -> None:
    url = postgres_server.url(schema=schema)
    ctx = multiprocessing.get_context("spawn")
    go, results = ctx.Event(), ctx.Queue()
    workers = [ctx.Process(target=_open_when_told, args=(url, go, results)) for _ in range(4)]
    for proc in workers:
        proc.start()
    go.set()
    outcomes = [results.get(timeout=60) for _ in workers]
    for proc in workers:
        proc.join(timeout=30)
    assert outcomes == ["ok"] * 4
    expected = [number for number, _ in migrations()]
    rows = postgres_server.execute(
        f"SELECT version FROM {schema}.devcrew_schema_version ORDER BY version")
    assert [r[0] for r in rows] == expected
    with PostgresStore(url) as again:  # reopening applies nothing
        assert len(again.list_agents()) == 4
    rows = postgres_server.execute(f"SELECT count(*) FROM {schema}.devcrew_schema_version")
    assert rows == [(len(expected),)]


def test_newer_schema_is_refused_and_left_untouched(postgres_server: PostgresServer,
                                                    schema: str) -> None:
    url = postgres_server.url(schema=schema)
    with PostgresStore(url) as store:
        store.put_agent(agent())
    postgres_server.execute(f"INSERT INTO {schema}.devcrew_schema_version (version) VALUES (999)")
    with pytest.raises(StoreError, match="newer"):
        PostgresStore(url)
    assert postgres_server.execute(f"SELECT count(*) FROM {schema}.agents") == [(1,)]


def test_json_columns_are_jsonb_and_capabilities_have_a_gin_index(
    store: PostgresStore, postgres_server: PostgresServer, schema: str,
) -> None:
    types = dict(postgres_server.execute(
        "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = %s AND column_name IN ('data', 'context')", (schema,)))
    assert types.pop("snapshots.data") == "text"  # kept byte for byte: content-addressed
    assert set(types.values()) == {"jsonb"} and len(types) >= 9
    for i in range(50):
        store.put_agent(AgentRecord(agent_id=f"a{i}", agent_type="Worker",
                                    capabilities=["python", f"skill-{i % 5}"]))
    with raw(postgres_server, schema) as conn, conn.cursor() as cur:
        cur.execute("ANALYZE agents")
        cur.execute("SET enable_seqscan = off")  # tiny tables: ask whether the index can
        cur.execute("EXPLAIN SELECT data FROM agents WHERE capabilities @> %s::text[]",
                    (["python", "skill-3"],))
        plan = "\n".join(r[0] for r in cur.fetchall())
    assert "agents_by_capability" in plan
    assert [a.agent_id for a in store.find_agents(["skill-3", "python"])] == [
        "a13", "a18", "a23", "a28", "a3", "a33", "a38", "a43", "a48", "a8"]


# -- the audit trail -------------------------------------------------------------------------
@pytest.mark.parametrize("statement", [
    "UPDATE audit SET kind = 'forged'",
    "DELETE FROM audit",
    "TRUNCATE audit",
    "UPDATE audit SET data = '{}'::jsonb WHERE seq = 1",
])
def test_audit_rows_cannot_be_changed_even_by_raw_sql(
    store: PostgresStore, postgres_server: PostgresServer, schema: str, statement: str,
) -> None:
    store.append_audit([AuditRecord(kind="delegation", subject_id="t1", data={"a": 1})])
    with raw(postgres_server, schema) as conn, conn.cursor() as cur, \
            pytest.raises(psycopg2.Error, match="append-only"):
        cur.execute(statement)
    assert [(r.kind, r.data) for r in store.list_audit()] == [("delegation", {"a": 1})]


# -- transactions, pooling, processes ---------------------------------------------------------
def test_a_batch_is_one_transaction(store: PostgresStore) -> None:
    store.put_agent(agent(max_tasks=1))
    with pytest.raises(RuntimeError), store.batch():
        assert store.acquire_slot("a1", "t1").acquired
        with store.batch():  # nested: joins the outer transaction
            store.create_run(RunRecord(run_id="r1", workflow_id="wf"))
        raise RuntimeError("undo")
    got = store.get_agent("a1")
    assert got is not None and got.current_load == 0
    assert store.get_run("r1") is None
    with store.batch():
        store.acquire_slot("a1", "t1")
        store.create_run(RunRecord(run_id="r1", workflow_id="wf"))
    assert store.get_run("r1") is not None and store.acquire_slot("a1", "t2").acquired is False


def test_a_batch_whose_statement_failed_says_it_was_not_committed(store: PostgresStore) -> None:
    handoff = HandoffRecord(handoff_id="h1", workflow_id="wf", source_agent_id="a1",
                            source_agent_type="Worker", target_agent_type="Worker")
    with pytest.raises(StoreError, match="rolled back"), store.batch():
        store.create_run(RunRecord(run_id="r1", workflow_id="wf"))
        # JSONB cannot hold NUL characters: PostgreSQL refuses the statement, and the
        # caller carries on as if nothing happened.
        with pytest.raises(StoreError, match="unsupported Unicode escape"):
            store.put_handoff(handoff, {"text": "a\x00b"})
    assert store.get_run("r1") is None


def test_a_delegation_racing_another_to_a_second_agent_gives_its_slot_back(
    store: PostgresStore, postgres_server: PostgresServer, schema: str,
) -> None:
    store.put_agent(agent("a1"))
    store.put_agent(agent("a2"))
    first = raw(postgres_server, schema)
    record = DelegationRecord(task_id="t1", agent_id="a1", agent_type="Worker", task_type="x")
    with first.cursor() as cur:
        # a1's delegation is made but not committed: the second one cannot see it yet.
        cur.execute("BEGIN")
        cur.execute("SELECT * FROM devcrew_delegate(%s, %s, 1.0, 'active', 1.0, %s::jsonb, "
                    "NULL, NULL, NULL, NULL)", ("a1", "t1", record.model_dump_json()))
        second: list[Any] = []
        racer = threading.Thread(target=lambda: second.append(_delegate_or_error(
            store, record.model_copy(update={"agent_id": "a2"}))))
        racer.start()
        racer.join(timeout=1)
        assert racer.is_alive(), "the second delegation waits for the first to commit"
        cur.execute("COMMIT")
    racer.join(timeout=30)
    first.close()
    assert isinstance(second[0], UsageError) and "'a1'" in str(second[0])
    loads = {a.agent_id: a.current_load for a in store.list_agents()}
    assert loads == {"a1": 1, "a2": 0}, "a2's slot was given back"
    got = store.get_delegation("t1")
    assert got is not None and got.agent_id == "a1"


def _delegate_or_error(store: PostgresStore, record: DelegationRecord) -> object:
    try:
        return store.delegate(record)
    except UsageError as exc:
        return exc


def test_calls_wait_for_a_free_connection_instead_of_failing(
    postgres_server: PostgresServer, schema: str,
) -> None:
    settings = load_settings(environ={"DEVCREW_POSTGRES_MAXCONN": "2"})
    assert settings.postgres_maxconn == 2
    with PostgresStore(postgres_server.url(schema=schema), settings) as store:
        store.put_agent(agent(max_tasks=100))
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda i: store.acquire_slot("a1", f"t{i}").acquired,
                                    range(40)))
        assert all(results)
        connections = postgres_server.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'devcrew' "
            "AND query NOT LIKE '%%pg_stat_activity%%'")
        assert connections[0][0] <= 2


def test_a_lost_connection_is_an_error_once_then_replaced(store: PostgresStore,
                                                          postgres_server: PostgresServer) -> None:
    assert store.ping()
    postgres_server.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'devcrew'")
    with pytest.raises(StoreError, match="PostgreSQL"):
        store.ping()
    assert store.ping()


def _backend_pid(store: PostgresStore) -> int:
    """The server process behind the connection a call of ``store`` gets."""
    rows = store._sessions.run(lambda tx: tx.query("SELECT pg_backend_pid()"))
    return int(rows[0][0])


def _child_uses_the_store(store: PostgresStore, results: Any) -> None:
    store.put_agent(agent("from-child"))
    results.put((_backend_pid(store), sorted(a.agent_id for a in store.list_agents())))
    # What a child exiting normally does to the store it inherited: close it, collect
    # it. Neither may end the parent's sessions.
    gc.collect()
    store.close()


def test_a_forked_child_opens_its_own_connections(store: PostgresStore) -> None:
    store.put_agent(agent("from-parent"))
    parent_backend = _backend_pid(store)  # the pool's one idle connection, shared by fork
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=_child_uses_the_store, args=(store, results))
    child.start()
    child_backend, seen = results.get(timeout=30)
    child.join(timeout=30)
    assert child.exitcode == 0
    assert seen == ["from-child", "from-parent"]
    assert child_backend != parent_backend
    # The parent's connection survived the child: same session, still answering.
    assert _backend_pid(store) == parent_backend
    assert len(store.list_agents()) == 2


def _handed_out(store: PostgresStore) -> int:
    """Connections of the store's pool that are open and not idle."""
    pool = store._pool
    return pool._count - len(pool._idle)


def _allocate_and_release(store: PostgresStore, task_id: str) -> None:
    got = store.allocate(Allocation(agent_id="kept", task_id=task_id, cpu_cores=1.0), 1.0)
    assert got is not None
    assert store.release_allocation("kept", task_id) is got


def test_a_thread_keeps_one_connection_for_fast_statements_until_it_ends(
        store: PostgresStore) -> None:
    store.put_agent(_limited("kept", 8, 8.0))
    assert _handed_out(store) == 0
    backends: list[int] = []

    def work() -> int:
        for i in range(3):
            _allocate_and_release(store, f"t{threading.get_ident()}-{i}")
        conn = store._sessions._kept.take()
        assert conn is not None
        backends.append(conn.get_backend_pid())
        return _handed_out(store)

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(work).result() == 1  # kept across calls, not given back
        assert pool.submit(work).result() == 1  # the same thread: the same one
    gc.collect()
    assert backends[0] == backends[1]
    assert _handed_out(store) == 0  # the thread ended: back in the pool
    assert store._sessions._kept._count == 0


def test_at_most_half_the_pool_is_kept_and_the_rest_stays_usable(
        store: PostgresStore) -> None:
    store.put_agent(_limited("kept", 16, 16.0))
    limit = store._pool.maxconn // 2
    ready = threading.Barrier(limit + 3)
    done = threading.Event()

    def work(index: int) -> None:
        _allocate_and_release(store, f"t{index}")
        ready.wait(timeout=30)
        done.wait(timeout=30)

    with ThreadPoolExecutor(limit + 2) as pool:
        futures = [pool.submit(work, i) for i in range(limit + 2)]
        ready.wait(timeout=30)
        assert store._sessions._kept._count == limit
        assert _handed_out(store) == limit
        # Every other call still gets a connection from the pool.
        assert store.get_agent("kept") is not None
        _allocate_and_release(store, "main")
        done.set()
        for future in futures:
            future.result()
    gc.collect()
    assert _handed_out(store) == 0


def _child_allocates(store: PostgresStore, results: Any) -> None:
    _allocate_and_release(store, "from-child")
    conn = store._sessions._kept.take()
    results.put(None if conn is None else conn.get_backend_pid())
    gc.collect()
    store.close()


def test_a_forked_child_keeps_its_own_connection_not_the_parents(
        store: PostgresStore) -> None:
    store.put_agent(_limited("kept", 4, 4.0))
    _allocate_and_release(store, "from-parent")
    parent_conn = store._sessions._kept.take()
    assert parent_conn is not None
    parent_backend = parent_conn.get_backend_pid()
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=_child_allocates, args=(store, results))
    child.start()
    child_backend = results.get(timeout=30)
    child.join(timeout=30)
    assert child.exitcode == 0
    assert child_backend is not None and child_backend != parent_backend
    # The parent's kept connection survived the child, still its own session.
    _allocate_and_release(store, "again")
    conn = store._sessions._kept.take()
    assert conn is parent_conn and conn.get_backend_pid() == parent_backend


def test_close_closes_the_closing_threads_kept_connection(
        postgres_server: PostgresServer, schema: str) -> None:
    store = PostgresStore(postgres_server.url(schema=schema))
    store.put_agent(_limited("kept", 4, 4.0))
    _allocate_and_release(store, "t1")
    assert _handed_out(store) == 1
    store.close()
    assert store._pool._count == 0
    with pytest.raises(StoreError, match="closed"):
        store.allocate(Allocation(agent_id="kept", task_id="t2", cpu_cores=1.0), 1.0)


def test_close_is_idempotent_and_final(postgres_server: PostgresServer, schema: str) -> None:
    store = PostgresStore(postgres_server.url(schema=schema))
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.ping()


def test_concurrent_appends_keep_seq_order_equal_to_commit_order(store: PostgresStore) -> None:
    seen: list[int] = []
    stop = threading.Event()

    def poll() -> None:
        after = 0
        while not stop.is_set():
            for record in store.list_audit(after=after):
                assert record.seq is not None and record.seq > after
                seen.append(record.seq)
                after = record.seq

    poller = threading.Thread(target=poll)
    poller.start()
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda i: store.append_audit([AuditRecord(kind="k", subject_id=str(i))]),
                      range(200)))
    stop.set()
    poller.join()
    seen.extend(r.seq for r in store.list_audit(after=seen[-1] if seen else 0)
                if r.seq is not None)
    # A poller that only ever asks for rows after the last seq it saw missed none.
    assert seen == sorted(seen) and len(seen) == 200


# -- allocation counters under concurrency ---------------------------------------------
def _usage(server: PostgresServer, schema: str, agent_id: str) -> tuple[Any, ...]:
    """The agent's totals beside the sums of its rows (slots and allocations)."""
    rows = server.execute(
        f"SELECT t.load, t.alloc_cpu, t.alloc_memory, "
        f"(SELECT count(h.slot_at) FROM {schema}.all_holdings h WHERE h.agent_id = t.agent_id), "
        f"(SELECT coalesce(sum(cpu_cores), 0) FROM {schema}.all_holdings h "
        f" WHERE h.agent_id = t.agent_id), "
        f"(SELECT coalesce(sum(memory_mb), 0) FROM {schema}.all_holdings h "
        f" WHERE h.agent_id = t.agent_id) "
        f"FROM {schema}.agent_totals t WHERE t.agent_id = %s", (agent_id,))
    return tuple(rows[0])


def _limited(agent_id: str, max_tasks: int, cpu: float) -> AgentRecord:
    return AgentRecord(agent_id=agent_id, agent_type="Worker", capabilities=["python"],
                       max_concurrent_tasks=max_tasks,
                       resource_limits=ResourceLimits(agent_id=agent_id, cpu_cores=cpu,
                                                      memory_mb=1e6))


def test_concurrent_allocates_never_over_commit_and_counters_equal_the_rows(
        store: PostgresStore, postgres_server: PostgresServer, schema: str) -> None:
    store.put_agent(_limited("hot", 4, 3.0))
    store.acquire_slot("hot", "task-0")  # some tasks hold their slot already

    def work(worker: int) -> list[bool]:
        got = []
        for i in range(60):
            task = f"task-{(worker * 7 + i) % 9}"  # tasks shared between threads
            if (i + worker) % 3 == 2:
                got.append(store.release_allocation("hot", task) is not None)
            else:
                got.append(store.allocate(Allocation(agent_id="hot", task_id=task,
                                                     cpu_cores=1.0, memory_mb=1.0),
                                          float(i)) is not None)
            rows = store.list_allocations("hot")
            assert sum(a.cpu_cores for a in rows) <= 3.0 + 1e-9
        return got

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(work, range(6)))
    load, cpu, memory, slots, cpu_sum, memory_sum = _usage(postgres_server, schema, "hot")
    assert (load, cpu, memory) == (slots, cpu_sum, memory_sum)
    assert cpu <= 3
    assert load <= 4


# -- schema 3: holdings and totals --------------------------------------------------------
def _totals_and_sums(server: PostgresServer, schema: str) -> list[tuple[Any, ...]]:
    """Per registered agent: its totals row, then the same figures summed from its rows."""
    return server.execute(
        f"SELECT t.agent_id, t.load, t.allocations, t.alloc_cpu, t.alloc_memory, "
        f"t.alloc_disk, t.alloc_network, t.resv_cpu, t.resv_memory, t.held_rows, "
        f"(SELECT count(h.slot_at) FROM {schema}.all_holdings h WHERE h.agent_id = t.agent_id), "
        f"(SELECT count(h.created_at) FROM {schema}.all_holdings h "
        f" WHERE h.agent_id = t.agent_id), "
        f"(SELECT coalesce(sum(h.cpu_cores), 0) FROM {schema}.all_holdings h "
        f" WHERE h.agent_id = t.agent_id), "
        f"(SELECT coalesce(sum(h.memory_mb), 0) FROM {schema}.all_holdings h "
        f" WHERE h.agent_id = t.agent_id), "
        f"(SELECT coalesce(sum(h.disk_mb), 0) FROM {schema}.all_holdings h "
        f" WHERE h.agent_id = t.agent_id), "
        f"(SELECT coalesce(sum(h.network_mbps), 0) FROM {schema}.all_holdings h "
        f" WHERE h.agent_id = t.agent_id), "
        f"(SELECT coalesce(sum(r.cpu_cores), 0) FROM {schema}.reservations r "
        f" WHERE r.agent_id = t.agent_id AND r.counted), "
        f"(SELECT coalesce(sum(r.memory_mb), 0) FROM {schema}.reservations r "
        f" WHERE r.agent_id = t.agent_id AND r.counted), "
        f"(SELECT count(*) FROM {schema}.holdings h WHERE h.agent_id = t.agent_id) "
        f"FROM {schema}.agent_totals t ORDER BY t.agent_id")


def _assert_totals_equal_sums(server: PostgresServer, schema: str) -> None:
    for row in _totals_and_sums(server, schema):
        assert row[1:10] == row[10:], row


def test_migration_from_schema_2_keeps_allocations_slots_and_reservations(
        postgres_server: PostgresServer, schema: str) -> None:
    conn = raw(postgres_server, schema)
    with conn.cursor() as cur:
        # A database at schema 2, filled through the functions of schema 2.
        cur.execute("CREATE TABLE devcrew_schema_version (version integer PRIMARY KEY, "
                    "applied_at timestamptz NOT NULL DEFAULT now())")
        for number, sql in migrations()[:2]:
            cur.execute(sql)
            cur.execute("INSERT INTO devcrew_schema_version (version) VALUES (%s)", (number,))
        for agent_id in ("a1", "a2"):
            record = _limited(agent_id, 3, 4.0)
            cur.execute(
                "INSERT INTO agents (agent_id, agent_type, capabilities, max_concurrent_tasks, "
                "limit_cpu_cores, limit_memory_mb, data) "
                "VALUES (%s, 'Worker', ARRAY['python'], 3, 4.0, 1e6, %s::jsonb)",
                (agent_id, record.model_dump_json(exclude={"current_load", "running_tasks"})))
        cur.execute("SELECT * FROM devcrew_acquire_slots('a1', ARRAY['held'], 1.0)")
        for task, cpu in (("held", 1.0), ("own", 1.5)):
            data = Allocation(agent_id="a1", task_id=task, cpu_cores=cpu, memory_mb=10.0,
                              priority=3, preemptable=False, created_at=2.0,
                              holds_slot=task == "own").model_dump_json()
            cur.execute("SELECT o_status FROM devcrew_allocate('a1', %s, NULL, '{}', 2.0, "
                        "%s, 10, 0, 0, 2.0, %s::jsonb)", (task, cpu, data))
            assert cur.fetchone() == ("allocated",)
        cur.execute("SELECT * FROM devcrew_acquire_slots('a2', ARRAY['slot-only'], 3.0)")
        cur.execute("SELECT devcrew_reserve('r1', 'a2', 1.0, 1e12, 1.0, 1.0, 5, 0, 0, %s::jsonb)",
                    ('{"reservation_id": "r1", "agent_id": "a2", "expires_at": 1e12, '
                     '"created_at": 1.0, "cpu_cores": 1.0, "memory_mb": 5.0}',))
        assert cur.fetchone() == ("reserved",)
    conn.close()

    with PostgresStore(postgres_server.url(schema=schema)) as store:
        a1, a2 = store.get_agent("a1"), store.get_agent("a2")
        assert a1 is not None and a2 is not None
        assert (a1.current_load, sorted(a1.running_tasks)) == (2, ["held", "own"])
        assert (a2.current_load, a2.running_tasks) == (1, ["slot-only"])
        held, own = store.list_allocations("a1")
        assert (held.task_id, held.holds_slot, held.cpu_cores) == ("held", False, 1.0)
        assert (own.task_id, own.holds_slot, own.priority, own.preemptable) == (
            "own", True, 3, False)
        assert store.get_reservation("r1") is not None
        _assert_totals_equal_sums(postgres_server, schema)
        # The capacity left is what the rows say: 4 - 2.5 cores on a1, 4 - 1 on a2.
        assert store.allocate(Allocation(agent_id="a1", task_id="big", cpu_cores=1.6),
                              10.0) is None
        assert store.allocate(Allocation(agent_id="a2", task_id="big", cpu_cores=3.1),
                              10.0) is None
        # Releasing frees the slot an allocation took, never one its task held before.
        assert store.release_allocation("a1", "own") is not None
        assert store.release_allocation("a1", "held") is not None
        after = store.get_agent("a1")
        assert after is not None and after.running_tasks == ["held"]
        assert store.cancel_reservation("r1")
        _assert_totals_equal_sums(postgres_server, schema)


def test_migration_from_schema_5_settles_the_json_quick_allocations(
        postgres_server: PostgresServer, schema: str) -> None:
    """Version 6 keeps `quick` as text: the allocations a version 5 fast allocate left in
    the JSON column become `holdings` rows, exactly, with the totals unchanged."""
    conn = raw(postgres_server, schema)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE devcrew_schema_version (version integer PRIMARY KEY, "
                    "applied_at timestamptz NOT NULL DEFAULT now())")
        for number, sql in migrations()[:5]:
            if number == 3:  # an agent registered before the totals rows were made
                record = _limited("a1", 3, 4.0)
                cur.execute(
                    "INSERT INTO agents (agent_id, agent_type, capabilities, "
                    "max_concurrent_tasks, limit_cpu_cores, limit_memory_mb, data) "
                    "VALUES ('a1', 'Worker', ARRAY['python'], 3, 4.0, 1e6, %s::jsonb)",
                    (record.model_dump_json(exclude={"current_load", "running_tasks"}),))
            cur.execute(sql)
            cur.execute("INSERT INTO devcrew_schema_version (version) VALUES (%s)", (number,))
        # What version 5's fast allocate wrote: the totals, and the task's JSON entry.
        for task, cpu, priority, preemptable in (("q1", 1.5, 3, False), ("q2", 1e-05, 1, True)):
            cur.execute(
                "UPDATE agent_totals SET load = load + 1, allocations = allocations + 1, "
                "alloc_cpu = alloc_cpu + %s::numeric, alloc_memory = alloc_memory + 10, "
                "quick = quick || jsonb_build_object(%s::text, jsonb_build_array("
                "2.25::float8, %s::numeric, 10::numeric, 0::numeric, 0::numeric, %s::integer, "
                "%s::boolean, 7.5::float8)) WHERE agent_id = 'a1'",
                (repr(cpu), task, repr(cpu), priority, preemptable))
    conn.close()

    with PostgresStore(postgres_server.url(schema=schema)) as store:
        assert postgres_server.execute(
            f"SELECT quick FROM {schema}.agent_totals WHERE agent_id = 'a1'") == [(";",)]
        settled = {a.task_id: a for a in store.list_allocations("a1")}
        assert settled == {
            "q1": Allocation(agent_id="a1", task_id="q1", cpu_cores=1.5, memory_mb=10.0,
                             priority=3, preemptable=False, created_at=2.25, holds_slot=True),
            "q2": Allocation(agent_id="a1", task_id="q2", cpu_cores=1e-05, memory_mb=10.0,
                             priority=1, preemptable=True, created_at=2.25, holds_slot=True),
        }
        a1 = store.get_agent("a1")
        assert a1 is not None and (a1.current_load, sorted(a1.running_tasks)) == (
            2, ["q1", "q2"])
        _assert_totals_equal_sums(postgres_server, schema)
        # Version 6's fast allocate: a text entry, read back exactly through all_holdings.
        fresh = store.allocate(Allocation(agent_id="a1", task_id="f1", cpu_cores=0.1,
                                          memory_mb=1e-05, created_at=3.5), 9.25)
        assert fresh is not None and fresh.holds_slot is True
        assert postgres_server.execute(
            f"SELECT quick FROM {schema}.agent_totals WHERE agent_id = 'a1'") == [
            (";f1, 3.5, 0.1, 1e-05, 0.0, 0.0, 2, true, 9.25;",)]
        assert {a.task_id: a for a in store.list_allocations("a1")}["f1"] == fresh
        _assert_totals_equal_sums(postgres_server, schema)
        assert store.release_allocation("a1", "f1") is fresh
        assert store.release_allocation("a1", "q1") == settled["q1"]
        _assert_totals_equal_sums(postgres_server, schema)


def test_totals_equal_the_sums_after_random_operations(
        store: PostgresStore, postgres_server: PostgresServer, schema: str) -> None:
    rng = random.Random(1234)  # noqa: S311 - a reproducible sequence, not a secret
    agents = ["a1", "a2", "a3"]
    for agent_id in agents:
        store.put_agent(_limited(agent_id, 3, 4.0))
    tasks = [f"t{i}" for i in range(6)]
    for step in range(400):
        agent_id, task = rng.choice(agents), rng.choice(tasks)
        op = rng.randrange(10)
        now = float(step)
        if op <= 2:
            store.allocate(Allocation(agent_id=agent_id, task_id=task,
                                      cpu_cores=rng.choice([0.1, 0.5, 1.0, 1.3]),
                                      memory_mb=rng.choice([1.0, 7.5]),
                                      disk_mb=rng.choice([0.0, 2.0])), now)
        elif op == 3:
            store.release_allocation(agent_id, task)
        elif op == 4:
            store.acquire_slot(agent_id, task)
        elif op == 5:
            store.release_slot(agent_id, task)
        elif op == 6:
            store.transfer_slots([(agent_id, task, rng.choice(tasks))])
        elif op == 7:
            victims = [a.task_id for a in store.list_allocations(agent_id)][:1]
            store.preempt_and_allocate(
                Allocation(agent_id=agent_id, task_id=task, cpu_cores=2.0), victims, now)
        elif op == 8:
            store.reserve(Reservation(reservation_id=f"r{step}", agent_id=agent_id,
                                      cpu_cores=0.5, expires_at=now + 5.0,
                                      created_at=now), now)
            store.expire_reservations(now - 3.0)
        else:
            limits = rng.choice([None, 2.0, 8.0])
            changed = _limited(agent_id, rng.choice([1, 3, 5]), limits or 1.0)
            if limits is None:
                changed = changed.model_copy(update={"resource_limits": None})
            store.put_agent(changed)
        if step % 50 == 49:
            _assert_totals_equal_sums(postgres_server, schema)
    _assert_totals_equal_sums(postgres_server, schema)
    # Every slot and allocation the rows hold is what the store reports.
    for agent_id in agents:
        record = store.get_agent(agent_id)
        assert record is not None
        assert record.current_load == len(record.running_tasks)
    assert len(store.list_allocations()) == postgres_server.execute(
        f"SELECT count(created_at) FROM {schema}.all_holdings")[0][0]


def test_fast_paths_racing_general_calls_on_shared_tasks_keep_the_totals(
        store: PostgresStore, postgres_server: PostgresServer, schema: str) -> None:
    """Allocate and release (the fast statements, which lock the totals row first since
    schema 4) racing the calls that lock the agent first (preemption, slots,
    reservations, put_agent) on the same tasks: no error, and the totals equal the
    rows' sums."""
    store.put_agent(_limited("hot", 4, 3.0))
    deadlocks = "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
    before = postgres_server.execute(deadlocks)[0][0]

    def work(worker: int) -> None:
        rng = random.Random(worker)  # noqa: S311 - a reproducible sequence
        for i in range(80):
            task = f"task-{rng.randrange(6)}"
            op = rng.randrange(8)
            if op <= 2:
                store.allocate(Allocation(agent_id="hot", task_id=task, cpu_cores=1.0),
                               float(i))
            elif op == 3:
                store.release_allocation("hot", task)
            elif op == 4:
                victims = [a.task_id for a in store.list_allocations("hot")][:1]
                store.preempt_and_allocate(
                    Allocation(agent_id="hot", task_id=task, cpu_cores=2.0), victims, float(i))
            elif op == 5:
                store.acquire_slot("hot", task)
            elif op == 6:
                store.release_slots([("hot", task)])
            else:
                store.put_agent(_limited("hot", rng.choice([3, 4]), rng.choice([3.0, 4.0])))

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(work, worker) for worker in range(6)]
        for future in futures:
            future.result(timeout=120)
    _assert_totals_equal_sums(postgres_server, schema)
    # A fast statement that deadlocked would fall back silently (and a general call be
    # retried): ask the server. Its backends report their statistics as they exit.
    store.close()
    threading.Event().wait(0.5)
    assert postgres_server.execute(deadlocks)[0][0] == before, "a deadlock happened"
    with PostgresStore(postgres_server.url(schema=schema)) as reopened:
        record = reopened.get_agent("hot")
    assert record is not None and record.current_load == len(record.running_tasks)


# -- schema 4: the fast statements --------------------------------------------------------
def test_fast_statements_leave_every_other_case_to_the_general_functions(
        store: PostgresStore, postgres_server: PostgresServer, schema: str) -> None:
    store.put_agent(_limited("a1", 5, 0.3))
    now = 1000.0
    # The contract suite's exact-limits case (0.1 + 0.2 fills 0.3, a changed granted
    # object): the fast release of the changed object does not match the row, changes
    # nothing, and the general function answers; here the totals are checked too.
    granted = {task: store.allocate(Allocation(agent_id="a1", task_id=task, cpu_cores=cpu),
                                    now)
               for task, cpu in (("t1", 0.1), ("t2", 0.2))}
    assert all(g is not None and g.holds_slot for g in granted.values())
    first = granted["t1"]
    assert first is not None
    first.cpu_cores = 0.05
    gone = store.release_allocation("a1", "t1")
    assert gone is not None and gone.cpu_cores == 0.1 and gone is not first
    _assert_totals_equal_sums(postgres_server, schema)
    # Unchanged, the granted object comes back itself.
    fresh = store.allocate(Allocation(agent_id="a1", task_id="t6", cpu_cores=0.05), now)
    assert fresh is not None
    assert store.release_allocation("a1", "t6") is fresh
    # A task that holds its slot: the fast INSERT fails (unique_violation), nothing of
    # it is kept, and the general function allocates onto the held slot.
    assert store.acquire_slot("a1", "t7").acquired
    held = store.allocate(Allocation(agent_id="a1", task_id="t7", cpu_cores=0.05), now)
    assert held is not None and held.holds_slot is False
    assert store.release_allocation("a1", "t7") is not None
    record = store.get_agent("a1")
    assert record is not None and record.running_tasks == ["t2", "t7"]
    _assert_totals_equal_sums(postgres_server, schema)
    # Released by another store (another process): this store's granted object is
    # stale, its fast release matches no row, and the answer is None.
    stale = store.allocate(Allocation(agent_id="a1", task_id="t8", cpu_cores=0.05), now)
    assert stale is not None
    with PostgresStore(postgres_server.url(schema=schema)) as other:
        assert other.release_allocation("a1", "t8") == stale
    assert store.release_allocation("a1", "t8") is None
    _assert_totals_equal_sums(postgres_server, schema)
    # A live reservation's capacity is counted (by the fast statement, which adds
    # nothing, and by the general function, which refuses too).
    assert store.reserve(Reservation(reservation_id="r1", agent_id="a1", cpu_cores=0.1,
                                     expires_at=now + 10), now)
    assert store.allocate(Allocation(agent_id="a1", task_id="t4", cpu_cores=0.1),
                          now) is None, "the live reservation holds the rest"
    assert store.allocate(Allocation(agent_id="a1", task_id="t4", cpu_cores=0.1),
                          now + 11) is not None, "expired: its capacity is free again"
    # Unknown agent: nothing stored, NotFoundError from the general function.
    with pytest.raises(NotFoundError):
        store.allocate(Allocation(agent_id="nobody", task_id="t1"), now)
    assert store.list_allocations("nobody") == []
    _assert_totals_equal_sums(postgres_server, schema)


def test_infinite_amounts_take_the_general_functions(
        store: PostgresStore, postgres_server: PostgresServer, schema: str) -> None:
    store.put_agent(agent("free", max_tasks=3))  # no resource limits
    now = 5.0
    endless = store.allocate(Allocation(agent_id="free", task_id="big",
                                        cpu_cores=float("inf")), now)
    assert endless is not None and endless.cpu_cores == float("inf")
    small = store.allocate(Allocation(agent_id="free", task_id="small", cpu_cores=1.0), now)
    assert small is not None
    assert store.release_allocation("free", "big") is not None
    assert store.release_allocation("free", "small") is small
    _assert_totals_equal_sums(postgres_server, schema)


@contextlib.contextmanager
def _while_agent_locked(server: PostgresServer, schema: str, agent_id: str,
                        call: Callable[[], Any]) -> Iterator[tuple[Any, list[Any]]]:
    """Lock the agent in another connection's transaction, start ``call`` in a thread
    and wait until it waits for that lock; the block then changes things through the
    yielded cursor, inside the lock holder's transaction, which commits when the block
    ends. The list yielded receives ``call``'s result once it ran."""
    holder = raw(server, schema)
    results: list[Any] = []
    try:
        with holder.cursor() as cur:
            cur.execute("BEGIN")
            cur.execute("SELECT devcrew_lock_agent(%s)", (agent_id,))
            thread = threading.Thread(target=lambda: results.append(call()))
            thread.start()
            for _ in range(500):
                # The agent's advisory lock, or (a fast statement) its totals row.
                if server.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")[0][0]:
                    break
                threading.Event().wait(0.01)
            else:
                pytest.fail("the call never waited for the agent's lock")
            yield cur, results
            cur.execute("COMMIT")
        thread.join(timeout=30)
    finally:
        holder.close()


def test_a_cancel_that_waited_while_its_reservation_moved_agent_cancels_nothing(
        store: PostgresStore, postgres_server: PostgresServer, schema: str) -> None:
    """cancel_reservation reads the reservation's agent, then waits for that agent's
    lock; if meanwhile the reservation was cancelled and made again on another agent,
    the waiting call must neither delete the new one nor charge the first agent."""
    store.put_agent(_limited("one", 4, 4.0))
    store.put_agent(_limited("two", 4, 4.0))
    assert store.reserve(Reservation(reservation_id="r1", agent_id="one", cpu_cores=1.0,
                                     expires_at=1e12), 1.0)
    with _while_agent_locked(postgres_server, schema, "one",
                             lambda: store.cancel_reservation("r1")) as (cur, results):
        # While it waits: the reservation is cancelled and made again on agent two.
        cur.execute("SELECT devcrew_cancel_reservation('r1')")
        cur.execute(
            "SELECT devcrew_reserve('r1', 'two', 2.0, 1e12, 2.0, 1.0, 0, 0, 0, %s::jsonb)",
            (Reservation(reservation_id="r1", agent_id="two", cpu_cores=1.0,
                         expires_at=1e12, created_at=2.0).model_dump_json(),))
        assert cur.fetchone()[0] == "reserved"
    assert results == [False]
    kept = store.get_reservation("r1")
    assert kept is not None and kept.agent_id == "two"
    _assert_totals_equal_sums(postgres_server, schema)


def test_delete_agent_if_expired_keeps_an_agent_renewed_while_it_waited(
        store: PostgresStore, postgres_server: PostgresServer, schema: str) -> None:
    """The check and the removal are one transaction under the agent's lock: a deadline
    moved by another connection while the removal waits for that lock keeps the agent."""
    store.put_agent(agent("ttl").model_copy(update={"expires_at": 100.0}))
    def removal() -> AgentRecord | None:
        return store.delete_agent("ttl", expired_by=150.0)

    with _while_agent_locked(postgres_server, schema, "ttl", removal) as (cur, results):
        cur.execute("UPDATE agents SET data = jsonb_set(data, '{expires_at}', '200') "
                    "WHERE agent_id = 'ttl'")
    assert results == [None]
    kept = store.get_agent("ttl")
    assert kept is not None and kept.expires_at == 200.0


def test_a_fast_allocate_that_waited_while_its_task_took_a_slot_takes_no_second_one(
        store: PostgresStore, postgres_server: PostgresServer, schema: str) -> None:
    """The fast allocate's snapshot predates a slot committed while it waited for the
    totals row; the call that took the slot changed the row (`held_rows`), so the
    statement re-checks it, looks for the task's row with a snapshot of its own (a
    VOLATILE function), gives up, and the general function allocates onto the slot (one
    slot, not two)."""
    store.put_agent(_limited("hot", 4, 4.0))

    def allocate() -> Allocation | None:
        return store.allocate(Allocation(agent_id="hot", task_id="x", cpu_cores=1.0), 1.0)

    with _while_agent_locked(postgres_server, schema, "hot", allocate) as (cur, results):
        cur.execute("SELECT * FROM devcrew_acquire_slots('hot', ARRAY['x'], 1.0)")
        assert cur.fetchone()[0] is True
    [got] = results
    assert got is not None and got.holds_slot is False  # onto the slot x took
    agent_now = store.get_agent("hot")
    assert agent_now is not None
    assert (agent_now.current_load, agent_now.running_tasks) == (1, ["x"])
    assert postgres_server.execute(
        f"SELECT count(*) FROM {schema}.all_holdings WHERE task_id = 'x'")[0][0] == 1
    _assert_totals_equal_sums(postgres_server, schema)


def test_a_store_that_did_not_see_the_slot_taken_allocates_onto_it(
        store: PostgresStore, postgres_server: PostgresServer, schema: str) -> None:
    """Another store (process) took the task's slot: this one has no hint, its fast
    allocate finds the agent holding rows and the task's row, and the general function
    allocates onto the slot; a task without a row still takes the fast path."""
    store.put_agent(_limited("hot", 4, 4.0))
    with PostgresStore(postgres_server.url(schema=schema)) as other:
        assert other.acquire_slot("hot", "x").acquired
    got = store.allocate(Allocation(agent_id="hot", task_id="x", cpu_cores=1.0), 1.0)
    assert got is not None and got.holds_slot is False
    fresh = store.allocate(Allocation(agent_id="hot", task_id="y", cpu_cores=1.0), 1.0)
    assert fresh is not None and fresh.holds_slot is True
    assert postgres_server.execute(
        f"SELECT strpos(quick, ';y,') > 0, strpos(quick, ';x,') > 0, held_rows "
        f"FROM {schema}.agent_totals "
        "WHERE agent_id = 'hot'")[0] == (True, False, 1)
    agent_now = store.get_agent("hot")
    assert agent_now is not None and agent_now.current_load == 2
    _assert_totals_equal_sums(postgres_server, schema)


def test_a_fast_release_that_waited_while_its_allocation_was_settled_still_releases_it(
        store: PostgresStore, postgres_server: PostgresServer, schema: str) -> None:
    """A general call moved the fast allocation into `holdings` while the fast release
    waited: the release updates nothing, the general function releases the row, and
    the caller still gets the allocation the store granted."""
    store.put_agent(_limited("hot", 4, 4.0))
    granted = store.allocate(Allocation(agent_id="hot", task_id="x", cpu_cores=1.0), 1.0)
    assert granted is not None
    assert postgres_server.execute(
        f"SELECT strpos(quick, ';x,') > 0 FROM {schema}.agent_totals "
        "WHERE agent_id = 'hot'")[0][0]
    with _while_agent_locked(postgres_server, schema, "hot",
                             lambda: store.release_allocation("hot", "x")) as (_, results):
        pass  # locking the agent settled it
    assert results == [granted] and results[0] is granted
    assert store.list_allocations("hot") == []
    agent_now = store.get_agent("hot")
    assert agent_now is not None and agent_now.current_load == 0
    _assert_totals_equal_sums(postgres_server, schema)


def _fast_statements_tried(store: PostgresStore,
                           monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the fast statements the store sends from now on (a live list)."""
    tried: list[str] = []
    fast = store._sessions.fast

    def counting(statement: Any, arguments: str, fallback: frozenset[str]) -> int:
        tried.append(statement.name)
        return fast(statement, arguments, fallback)

    monkeypatch.setattr(store._sessions, "fast", counting)
    return tried


def test_an_allocation_the_general_function_granted_is_released_without_a_fast_try(
        store: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Granted inside a batch (the general function: a `holdings` row), its release goes
    to the general function at once (the fast release could only miss: one wasted round
    trip) and still answers with the object the store granted."""
    tried = _fast_statements_tried(store, monkeypatch)
    store.put_agent(_limited("a1", 4, 4.0))
    with store.batch():
        got = store.allocate(Allocation(agent_id="a1", task_id="t1", cpu_cores=1.0), 1.0)
    assert got is not None and got.holds_slot is True
    assert store.release_allocation("a1", "t1") is got
    assert tried == []


def test_allocating_onto_a_slot_this_store_saw_taken_skips_the_fast_statement(
        store: PostgresStore, postgres_server: PostgresServer, schema: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine takes a task's slot, then allocates: the fast statement would find the
    task's row and update nothing (a wasted round trip), so the store goes to the
    general function at once for the slots it saw taken."""
    tried = _fast_statements_tried(store, monkeypatch)
    store.put_agent(_limited("a1", 6, 6.0))
    assert store.acquire_slots("a1", ["t1", "t3"])[0].acquired
    on_slot = store.allocate(Allocation(agent_id="a1", task_id="t1", cpu_cores=1.0), 1.0)
    assert on_slot is not None and on_slot.holds_slot is False
    assert tried == []
    fresh = store.allocate(Allocation(agent_id="a1", task_id="t2", cpu_cores=1.0), 1.0)
    assert fresh is not None and fresh.holds_slot is True
    assert tried == [FAST_ALLOCATE.name]
    # A slot handed on: the new holder is known, the old one free again.
    assert store.transfer_slots([("a1", "t3", "t4")]) == [True]
    tried.clear()
    assert store.allocate(Allocation(agent_id="a1", task_id="t4", cpu_cores=1.0),
                          1.0) is not None
    assert tried == []
    assert store.allocate(Allocation(agent_id="a1", task_id="t3", cpu_cores=1.0),
                          1.0) is not None
    assert tried == [FAST_ALLOCATE.name]
    # Freed: the next allocate of the task may take the fast statement again.
    assert store.release_allocation("a1", "t1") is not None
    assert store.release_slots([("a1", "t1")]) == [True]
    tried.clear()
    assert store.allocate(Allocation(agent_id="a1", task_id="t1", cpu_cores=1.0),
                          1.0) is not None
    assert tried == [FAST_ALLOCATE.name]
    _assert_totals_equal_sums(postgres_server, schema)
