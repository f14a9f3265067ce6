-- devcrew PostgreSQL schema, version 6: `agent_totals.quick` is text, not jsonb.
--
-- Why: the fast statements rewrite the agent's totals row at every allocate and release,
-- and with jsonb each one also rebuilt the whole `quick` document (`||`, `-`, `?`, `->`:
-- decode, merge, encode). Measured on two vCPUs at eight clients, the bare fast
-- statements cost the server ~180 us of CPU per pair against the floor's ~130; with
-- text (append, strpos, replace: byte copies and searches) ~145-165, and more pairs/s
-- for the same statements (docs/performance.md, "sixth session").
--
-- The format: `quick` is ';' followed by one entry per fast allocation,
--     task_id, created_at, cpu_cores, memory_mb, disk_mb, network_mbps, priority,
--     preemptable, slot_at;
-- (values separated by ',' and a space; numbers as Python writes finite floats, which
-- float8 and numeric read exactly; preemptable as true or false). The store writes the
-- entry (plugins/devcrew_postgres/fastpaths.py) from the same literals it passes as the
-- fast statements' typed parameters, so the entry and the amounts added to the totals
-- are the same numbers. Task IDs never hold ',' or ';' (the ID alphabet), so
-- ';' || task_id || ',' finds a task's entry and nothing else, and the fast release,
-- given the entry its allocate appended, removes exactly that one
-- (replace(quick, ';' || entry, ';')). Everything else of version 5 holds:
-- `all_holdings` shows the entries as rows, devcrew_lock_agent settles them into
-- `holdings`, and a task is in `quick` or in `holdings` on an agent, never in both.
--
-- Upgrading: stop the processes of an older devcrew first (their fast statements write
-- jsonb). Entries of version 5 are settled into `holdings` here, with the totals rows
-- locked against writes first: a version 5 fast statement committed between the copy
-- and the type change would leave totals that no longer match the rows (its allocation
-- counted and gone, or released and still a row); with the lock it waits, then fails
-- on the text column (it changes nothing), and its store takes the general path.

LOCK TABLE agent_totals IN SHARE ROW EXCLUSIVE MODE;

INSERT INTO holdings (agent_id, task_id, slot_at, created_at, cpu_cores, memory_mb, disk_mb,
                      network_mbps, priority, preemptable, holds_slot)
    SELECT t.agent_id, q.key, (q.value ->> 7)::double precision,
           (q.value ->> 0)::double precision, (q.value ->> 1)::numeric,
           (q.value ->> 2)::numeric, (q.value ->> 3)::numeric, (q.value ->> 4)::numeric,
           (q.value ->> 5)::integer, (q.value ->> 6)::boolean, true
    FROM agent_totals t CROSS JOIN LATERAL jsonb_each(t.quick) q;

DROP VIEW all_holdings;

ALTER TABLE agent_totals
    ALTER COLUMN quick DROP DEFAULT,
    ALTER COLUMN quick TYPE text USING ';',
    ALTER COLUMN quick SET DEFAULT ';',
    ADD CONSTRAINT agent_totals_quick_format CHECK (left(quick, 1) = ';');

-- The entries of a `quick` text as rows.
CREATE FUNCTION devcrew_quick_entries(p_quick text)
RETURNS TABLE (task_id text, created_at double precision, cpu_cores numeric,
               memory_mb numeric, disk_mb numeric, network_mbps numeric, priority integer,
               preemptable boolean, slot_at double precision)
LANGUAGE sql IMMUTABLE AS $$
    SELECT split_part(e, ',', 1), split_part(e, ',', 2)::double precision,
           split_part(e, ',', 3)::numeric, split_part(e, ',', 4)::numeric,
           split_part(e, ',', 5)::numeric, split_part(e, ',', 6)::numeric,
           split_part(e, ',', 7)::integer, split_part(e, ',', 8)::boolean,
           split_part(e, ',', 9)::double precision
    FROM unnest(string_to_array(p_quick, ';')) AS e
    WHERE e <> ''
$$;

CREATE VIEW all_holdings AS
SELECT agent_id, task_id, slot_at, created_at, cpu_cores, memory_mb, disk_mb, network_mbps,
       priority, preemptable, reservation_id, holds_slot
FROM holdings
UNION ALL
SELECT t.agent_id, q.task_id COLLATE "C", q.slot_at, q.created_at, q.cpu_cores, q.memory_mb,
       q.disk_mb, q.network_mbps, q.priority, q.preemptable, NULL::text COLLATE "C", true
FROM agent_totals t CROSS JOIN LATERAL devcrew_quick_entries(t.quick) q;

CREATE OR REPLACE FUNCTION devcrew_lock_agent(p_agent_id text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_quick text;
BEGIN
    PERFORM pg_advisory_xact_lock(1684371044, devcrew_agent_key(p_agent_id));
    SELECT quick INTO v_quick FROM agent_totals WHERE agent_id = p_agent_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF v_quick <> ';' THEN
        INSERT INTO holdings (agent_id, task_id, slot_at, created_at, cpu_cores, memory_mb,
                              disk_mb, network_mbps, priority, preemptable, holds_slot)
            SELECT p_agent_id, q.task_id, q.slot_at, q.created_at, q.cpu_cores, q.memory_mb,
                   q.disk_mb, q.network_mbps, q.priority, q.preemptable, true
            FROM devcrew_quick_entries(v_quick) q;
        UPDATE agent_totals SET quick = ';' WHERE agent_id = p_agent_id;
    END IF;
    RETURN true;
END
$$;
