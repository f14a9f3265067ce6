"""What only the SQLite backend promises: a durable file, WAL, a versioned schema."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from devcrew_core.errors import ConfigError, StoreError
from devcrew_core.stores import open_store
from devcrew_core.stores.records import AgentRecord, AuditRecord
from devcrew_core.stores.sqlite import SQLiteStore, migrations, sqlite_path


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def test_state_survives_reopening_the_file(tmp_path: Path) -> None:
    db = tmp_path / "devcrew.db"
    with SQLiteStore(_url(db)) as store:
        store.put_agent(AgentRecord(agent_id="a1", agent_type="T", capabilities=["x"]))
        store.acquire_slot("a1", "t1")
        store.append_audit([AuditRecord(kind="delegation", subject_id="t1")])
    with SQLiteStore(_url(db)) as again:
        agent = again.get_agent("a1")
        assert agent is not None and agent.running_tasks == ["t1"]
        assert [r.kind for r in again.list_audit()] == ["delegation"]


def test_wal_mode_busy_timeout_and_schema_version(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "dir" / "devcrew.db"
    with SQLiteStore(_url(db)) as store:
        store.ping()
    assert db.exists(), "parent directories are created"
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == migrations()[-1][0]
    finally:
        conn.close()
    assert SQLiteStore.BUSY_TIMEOUT_MS >= 1000


def test_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    db = tmp_path / "devcrew.db"
    with SQLiteStore(_url(db)) as store:
        store.put_agent(AgentRecord(agent_id="a1", agent_type="T", capabilities=["x"]))
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        SQLiteStore(_url(db))
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT COUNT(*) FROM agents").fetchone()[0] == 1
    finally:
        conn.close()


def test_audit_rows_cannot_be_changed_even_with_raw_sql(tmp_path: Path) -> None:
    db = tmp_path / "devcrew.db"
    with SQLiteStore(_url(db)) as store:
        store.append_audit([AuditRecord(kind="handoff")])
    conn = sqlite3.connect(db)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE audit SET kind = 'x'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM audit")
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///tmp/x.db", "/tmp/x.db"),
        ("sqlite:////tmp/x.db", "/tmp/x.db"),
    ],
)
def test_url_forms(url: str, path: str) -> None:
    assert str(sqlite_path(url)[0]) == path


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://", "names no file"),
        ("sqlite:///", "names no file"),
        ("sqlite:///tmp/x.db?journal=off", "unknown option"),
        ("sqlite:///tmp/x.db?synchronous=maybe", "synchronous='maybe'"),
    ],
)
def test_bad_urls_are_config_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SQLiteStore(url)


def test_unusable_directory_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create directory"):
        SQLiteStore(_url(blocker / "sub" / "devcrew.db"))


def test_open_store_selects_backend_by_scheme(tmp_path: Path) -> None:
    store = open_store(_url(tmp_path / "a.db"))
    try:
        assert isinstance(store, SQLiteStore)
    finally:
        store.close()
    first, second = open_store("memory://shared-x"), open_store("memory://shared-x")
    assert first is second, "one memory store per URL within a process"
    assert open_store("memory://other-y") is not first


def test_unknown_scheme_names_the_known_ones() -> None:
    from devcrew_core.errors import PluginError

    with pytest.raises(PluginError, match=r"'mongodb'.*memory.*sqlite"):
        open_store("mongodb://localhost/x")


def test_a_version_1_database_is_migrated_in_place(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    version_1 = dict(migrations())[1]
    conn.executescript(version_1)
    conn.execute("PRAGMA user_version = 1")
    conn.execute(
        "INSERT INTO runs (run_id, workflow_id, status, created_at, data) VALUES (?,?,?,?,?)",
        ("r1", "wf", "running", 1.0,
         '{"run_id": "r1", "workflow_id": "wf", "status": "running", "created_at": 1.0, '
         '"cancel_requested": true, "data": {}}'))
    conn.commit()
    conn.close()
    with SQLiteStore(_url(db)) as store:
        assert store.cancel_requested("r1") is True
        run = store.get_run("r1")
        assert run is not None and run.status.value == "running"
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == migrations()[-1][0]
    finally:
        conn.close()
