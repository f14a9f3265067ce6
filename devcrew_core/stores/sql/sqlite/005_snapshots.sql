-- Version 5: immutable documents addressed by their content digest. A run refers to the
-- snapshot of its workflow definition instead of carrying it, so updating a run (start,
-- heartbeat, end) no longer rewrites the whole workflow, and runs of an unchanged
-- workflow share one copy.
CREATE TABLE IF NOT EXISTS snapshots (
    snapshot_id TEXT PRIMARY KEY,
    data TEXT NOT NULL
);
