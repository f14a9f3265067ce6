-- devcrew PostgreSQL schema, version 5: the allocations granted by the fast allocate
-- live in the agent's totals row (`agent_totals.quick`) until another call locks the
-- agent, instead of in rows of `holdings`.
--
-- Why: with version 4 each fast allocate and release changed two tables (the totals row,
-- then the task's row of `holdings` and its index): measured on two vCPUs at four
-- clients, the second change was what kept pairs/s at 0.43-0.47 of the benchmark's
-- floor (one UPDATE of one row), and the same statements changing only the totals row
-- ran at 0.93 of it (docs/performance.md, "PostgreSQL schema 5").
--
-- * `quick` maps a task ID to the allocation the fast allocate granted it: a JSON array
--   [created_at, cpu_cores, memory_mb, disk_mb, network_mbps, priority, preemptable,
--   slot_at] (amounts as exact numbers). Such an allocation took its task's slot
--   (holds_slot, no reservation) and is counted in the totals like a `holdings` row. A
--   task is in `quick` or in `holdings` on an agent, never in both.
-- * `all_holdings` (a view) is `holdings` plus the entries of `quick` as rows: what
--   readers use (listings, an agent's running tasks, the tests' sums).
-- * devcrew_lock_agent, which every call but the fast statements takes before it reads
--   or changes an agent's holdings, settles the agent: it moves `quick` into `holdings`
--   rows and empties it, so the general functions of version 3 and 4 see rows only and
--   are unchanged.
-- * `held_rows` counts the agent's `holdings` rows (statement triggers on `holdings`; a
--   new totals row counts the rows its agent_id finds).
-- * Fast allocate (plugins/devcrew_postgres/fastpaths.py FAST_ALLOCATE): one UPDATE of
--   the totals row that adds the allocation to the totals and to `quick` if it fits and
--   the task holds nothing on the agent: not in `quick`, and no `holdings` row. Both are
--   checked on the totals row it updates when `held_rows` is 0 (the common case). Else
--   devcrew_task_holds_nothing looks for the task's row. It is VOLATILE on purpose: its
--   query takes a snapshot of its own, so when the statement waited for the totals row
--   and re-checks the row's new version, the call sees a `holdings` row the lock's
--   holder committed (the statement's own snapshot would not). Every call that adds
--   `holdings` rows changes the totals row (`held_rows`), so such a statement always
--   re-checks. No row updated: the store calls devcrew_allocate, which decides with the
--   agent locked. (A subquery in the statement's WHERE would be planned and started at
--   every call, even when `held_rows` is 0: ~0.1 of the benchmark's floor.)
-- * Fast release (FAST_RELEASE): one UPDATE that removes the task's entry from `quick`
--   and subtracts it from the totals, only if the entry is exactly the allocation the
--   store granted. Otherwise (settled into `holdings` meanwhile, or not this store's)
--   nothing is written and the store calls devcrew_release_allocation.
-- * Locks are those of version 4: the fast statements lock only the totals row; every
--   other call locks the agent (advisory lock, then the totals row) first.
--
-- Upgrading: stop the processes of an older devcrew first (their fast statements write
-- `holdings` rows without looking at `quick`, which this version's do not expect).

ALTER TABLE agent_totals
    ADD COLUMN quick jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN held_rows integer NOT NULL DEFAULT 0 CHECK (held_rows >= 0);

UPDATE agent_totals t
    SET held_rows = (SELECT count(*) FROM holdings h WHERE h.agent_id = t.agent_id);

-- `held_rows` follows the rows: every change of `holdings` happens with the agent's
-- totals row locked (devcrew_lock_agent), so these UPDATEs wait for nobody.
CREATE FUNCTION devcrew_count_holdings() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE agent_totals t SET held_rows = t.held_rows + n.rows
            FROM (SELECT agent_id, count(*) AS rows FROM changed GROUP BY agent_id) n
            WHERE t.agent_id = n.agent_id;
    ELSE
        UPDATE agent_totals t SET held_rows = t.held_rows - n.rows
            FROM (SELECT agent_id, count(*) AS rows FROM changed GROUP BY agent_id) n
            WHERE t.agent_id = n.agent_id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER holdings_inserted AFTER INSERT ON holdings
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT
    EXECUTE FUNCTION devcrew_count_holdings();
CREATE TRIGGER holdings_deleted AFTER DELETE ON holdings
    REFERENCING OLD TABLE AS changed FOR EACH STATEMENT
    EXECUTE FUNCTION devcrew_count_holdings();

-- A totals row made for a (re-)registered agent counts the rows that outlived it.
CREATE FUNCTION devcrew_count_held_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.held_rows := (SELECT count(*) FROM holdings WHERE agent_id = NEW.agent_id);
    RETURN NEW;
END
$$;
CREATE TRIGGER agent_totals_count_rows BEFORE INSERT ON agent_totals
    FOR EACH ROW EXECUTE FUNCTION devcrew_count_held_rows();

-- The fast release of version 4 raised this; version 5's writes nothing instead.
DROP FUNCTION devcrew_fast_path_mismatch();

CREATE VIEW all_holdings AS
SELECT agent_id, task_id, slot_at, created_at, cpu_cores, memory_mb, disk_mb, network_mbps,
       priority, preemptable, reservation_id, holds_slot
FROM holdings
UNION ALL
SELECT t.agent_id, q.key COLLATE "C", (q.value ->> 7)::double precision,
       (q.value ->> 0)::double precision, (q.value ->> 1)::numeric,
       (q.value ->> 2)::numeric, (q.value ->> 3)::numeric, (q.value ->> 4)::numeric,
       (q.value ->> 5)::integer, (q.value ->> 6)::boolean, NULL::text COLLATE "C", true
FROM agent_totals t CROSS JOIN LATERAL jsonb_each(t.quick) q;

-- Lock an agent for a call that is not a fast statement: its advisory lock, then its
-- totals row, whose `quick` allocations become `holdings` rows; true if the agent is
-- registered.
CREATE OR REPLACE FUNCTION devcrew_lock_agent(p_agent_id text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_quick jsonb;
BEGIN
    PERFORM pg_advisory_xact_lock(1684371044, devcrew_agent_key(p_agent_id));
    SELECT quick INTO v_quick FROM agent_totals WHERE agent_id = p_agent_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF v_quick <> '{}' THEN
        INSERT INTO holdings (agent_id, task_id, slot_at, created_at, cpu_cores, memory_mb,
                              disk_mb, network_mbps, priority, preemptable, holds_slot)
            SELECT p_agent_id, q.key, (q.value ->> 7)::double precision,
                   (q.value ->> 0)::double precision, (q.value ->> 1)::numeric,
                   (q.value ->> 2)::numeric, (q.value ->> 3)::numeric,
                   (q.value ->> 4)::numeric, (q.value ->> 5)::integer,
                   (q.value ->> 6)::boolean, true
            FROM jsonb_each(v_quick) q;
        UPDATE agent_totals SET quick = '{}' WHERE agent_id = p_agent_id;
    END IF;
    RETURN true;
END
$$;

-- Whether the task has no `holdings` row on the agent, as committed when this is called
-- (see the fast allocate above: VOLATILE, so not the calling statement's snapshot).
CREATE FUNCTION devcrew_task_holds_nothing(p_agent_id text, p_task_id text)
RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN NOT EXISTS (SELECT FROM holdings
                       WHERE agent_id = p_agent_id AND task_id = p_task_id);
END
$$;

-- Existing rows stay in `holdings`; the fast statements of version 4 are replaced by the
-- store's (they are prepared per connection, not stored).
