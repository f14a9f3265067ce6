-- devcrew SQLite schema, version 1. Every statement is idempotent (IF NOT EXISTS) so
-- processes that open a fresh database at the same moment cannot trip over each other.
-- Records are stored whole as JSON in `data`; the other columns exist to be indexed,
-- summed or filtered in SQL.

CREATE TABLE IF NOT EXISTS agents (
    agent_id TEXT PRIMARY KEY,
    agent_type TEXT NOT NULL,
    max_concurrent_tasks INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS agents_by_type ON agents (agent_type);

CREATE TABLE IF NOT EXISTS agent_capabilities (
    capability TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    PRIMARY KEY (capability, agent_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS load_slots (
    agent_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    acquired_at REAL NOT NULL,
    PRIMARY KEY (agent_id, task_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS allocations (
    agent_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    cpu_cores REAL NOT NULL,
    memory_mb REAL NOT NULL,
    disk_mb REAL NOT NULL,
    network_mbps REAL NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (agent_id, task_id)
);

CREATE TABLE IF NOT EXISTS reservations (
    reservation_id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    expires_at REAL NOT NULL,
    created_at REAL NOT NULL,
    cpu_cores REAL NOT NULL,
    memory_mb REAL NOT NULL,
    disk_mb REAL NOT NULL,
    network_mbps REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS reservations_by_agent ON reservations (agent_id, expires_at);

CREATE TABLE IF NOT EXISTS workflows (
    workflow_id TEXT PRIMARY KEY,
    data TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_by_workflow ON runs (workflow_id, created_at);

CREATE TABLE IF NOT EXISTS task_states (
    run_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (run_id, task_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS handoffs (
    handoff_id TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    data TEXT NOT NULL,
    context TEXT
);
CREATE INDEX IF NOT EXISTS handoffs_by_workflow ON handoffs (workflow_id, created_at);

CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    workflow_id TEXT,
    created_at REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_workflow ON audit (workflow_id, seq);

-- The audit trail is append-only, whatever code touches the file.
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit trail is append-only'); END;

CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    created_at REAL NOT NULL,
    data TEXT NOT NULL
);
