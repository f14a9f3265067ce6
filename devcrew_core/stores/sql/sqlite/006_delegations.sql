-- Version 6: delegations made through DelegationManager. An active delegation holds a
-- load slot (same transaction); completing it frees the slot and keeps the record.
CREATE TABLE IF NOT EXISTS delegations (
    task_id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    status TEXT NOT NULL,
    delegated_at REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS delegations_by_agent ON delegations (agent_id, status);
CREATE INDEX IF NOT EXISTS delegations_by_time ON delegations (delegated_at, task_id);
