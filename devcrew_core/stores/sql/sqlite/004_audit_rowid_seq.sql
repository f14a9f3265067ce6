-- Version 4: audit sequence numbers come from the rowid instead of AUTOINCREMENT.
-- AUTOINCREMENT only differs by never reusing the number of a deleted newest row, and
-- audit rows can never be deleted (the triggers below), so seq stays strictly increasing;
-- dropping it saves a write to sqlite_sequence in every transaction that appends audit
-- records (one per task on the engine's hot path).
DROP TRIGGER IF EXISTS audit_no_update;
DROP TRIGGER IF EXISTS audit_no_delete;
CREATE TABLE audit_v4 (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    workflow_id TEXT,
    created_at REAL NOT NULL,
    data TEXT NOT NULL
);
INSERT INTO audit_v4 (seq, kind, workflow_id, created_at, data)
    SELECT seq, kind, workflow_id, created_at, data FROM audit ORDER BY seq;
DROP TABLE audit;
ALTER TABLE audit_v4 RENAME TO audit;
CREATE INDEX IF NOT EXISTS audit_by_workflow ON audit (workflow_id, seq);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'audit trail is append-only'); END;
