-- Version 7: tasks waiting for capacity on an agent (deadlock detection reads these).
CREATE TABLE IF NOT EXISTS waits (
    agent_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    since REAL NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (agent_id, task_id)
) WITHOUT ROWID;
