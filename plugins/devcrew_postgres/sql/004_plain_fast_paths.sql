-- devcrew PostgreSQL schema, version 4: the fast paths of allocate and release are plain
-- prepared statements sent by the store (plugins/devcrew_postgres/fastpaths.py), not
-- PL/pgSQL functions, and they lock the agent's totals row FIRST.
--
-- Why: a PL/pgSQL call costs the server an executor start for the calling SELECT and one
-- per statement inside, and the shared advisory lock one more; with four clients on one
-- agent, allocate + release pairs ran at 0.32-0.46 of the benchmark's floor (two bare
-- UPDATEs). One statement (an UPDATE of the totals row in a WITH, then the INSERT or
-- DELETE of the task's row) does the same work with one executor start and no advisory
-- lock.
--
-- Locks, from this version on: every call that changes an agent's holdings locks the
-- agent's totals row before any task row. The fast statements lock it with their UPDATE;
-- every other call takes the agent's advisory lock exclusively and then the totals row
-- (devcrew_lock_agent, unchanged), so calls other than the fast statements still exclude
-- each other, and a fast statement waits for them (and they for it) on the totals row
-- alone. Nobody waits for a task row while holding a totals row that its holder needs:
-- whoever holds a task row of an agent got that agent's totals row first. The shared
-- advisory lock of version 3 is no longer taken.
--
-- * Fast allocate (the store's FAST_ALLOCATE): add the allocation to the totals if it
--   fits (same checks as devcrew_allocate_fast of version 3: slots, limits with the
--   1e-9 tolerance, no live or unswept reservation), then insert the task's row. A task
--   that has a row already (it holds its slot, or an allocation) makes the INSERT fail
--   with unique_violation and the whole statement roll back; the store then calls
--   devcrew_allocate (and skips this statement for the slots it saw taken: the engine
--   allocates after its task took a slot). No row inserted and no error: it did not
--   fit (or the agent is unknown), and the store asks devcrew_allocate, which decides
--   with the agent locked.
-- * Fast release (FAST_RELEASE): only for an allocation the store itself granted by the
--   fast allocate (it knows its fields): subtract them from the totals, then delete the
--   row only if it still holds exactly those fields and a slot the allocation took
--   (slot_at set, holds_slot); if it does not,
--   devcrew_fast_path_mismatch() raises and the statement rolls back, and the store calls
--   devcrew_release_allocation.
-- * devcrew_release_allocation always locks the agent (the fast branch of version 3 took
--   a task row before the totals row, which the fast statements could now deadlock with).
--
-- Upgrading: stop the processes of an older devcrew first (their functions are gone).

DROP FUNCTION devcrew_allocate_fast(text, text, double precision, numeric, numeric, numeric,
                                    numeric, double precision, integer, boolean);
DROP FUNCTION devcrew_release_allocation(text, text, boolean);

-- Raised by the fast release when the row is not the one the store granted (SQLSTATE
-- DC001, which the store recognises): everything the statement did is rolled back.
CREATE FUNCTION devcrew_fast_path_mismatch() RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the task''s row is not the allocation this store granted'
        USING ERRCODE = 'DC001';
END
$$;

-- Remove the task's allocation (freeing the slot it took, if the task still holds it):
-- the allocation's fields, or a row of NULLs when it has none. The agent is locked first,
-- as every call but the fast statements does.
CREATE FUNCTION devcrew_release_allocation(p_agent_id text, p_task_id text,
    OUT o_holds_slot boolean, OUT o_created_at double precision,
    OUT o_cpu double precision, OUT o_memory double precision, OUT o_disk double precision,
    OUT o_network double precision, OUT o_priority integer, OUT o_preemptable boolean,
    OUT o_reservation_id text)
LANGUAGE plpgsql AS $$
DECLARE
    v_gone record;
    v_freed integer := 0;
BEGIN
    PERFORM devcrew_lock_agent(p_agent_id);
    DELETE FROM holdings
        WHERE agent_id = p_agent_id AND task_id = p_task_id AND created_at IS NOT NULL
          AND (slot_at IS NULL OR holds_slot)
        RETURNING slot_at, created_at, cpu_cores, memory_mb, disk_mb, network_mbps,
                  priority, preemptable, reservation_id, holds_slot
        INTO v_gone;
    IF FOUND THEN
        IF v_gone.slot_at IS NOT NULL THEN
            v_freed := 1;
        END IF;
    ELSE
        -- The task held its slot before it allocated: the row keeps the slot.
        SELECT slot_at, created_at, cpu_cores, memory_mb, disk_mb, network_mbps, priority,
               preemptable, reservation_id, holds_slot
            INTO v_gone FROM holdings
            WHERE agent_id = p_agent_id AND task_id = p_task_id AND created_at IS NOT NULL
            FOR UPDATE;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        UPDATE holdings SET created_at = NULL, cpu_cores = 0, memory_mb = 0, disk_mb = 0,
                            network_mbps = 0, priority = NULL, preemptable = NULL,
                            reservation_id = NULL, holds_slot = false
            WHERE agent_id = p_agent_id AND task_id = p_task_id;
    END IF;
    UPDATE agent_totals SET load = load - v_freed, allocations = allocations - 1,
                            alloc_cpu = alloc_cpu - v_gone.cpu_cores,
                            alloc_memory = alloc_memory - v_gone.memory_mb,
                            alloc_disk = alloc_disk - v_gone.disk_mb,
                            alloc_network = alloc_network - v_gone.network_mbps
        WHERE agent_id = p_agent_id;
    IF 'Infinity' IN (v_gone.cpu_cores, v_gone.memory_mb, v_gone.disk_mb,
                      v_gone.network_mbps) THEN
        PERFORM devcrew_recount(p_agent_id);
    END IF;
    o_holds_slot := v_gone.holds_slot;
    o_created_at := v_gone.created_at;
    o_cpu := v_gone.cpu_cores;
    o_memory := v_gone.memory_mb;
    o_disk := v_gone.disk_mb;
    o_network := v_gone.network_mbps;
    o_priority := v_gone.priority;
    o_preemptable := v_gone.preemptable;
    o_reservation_id := v_gone.reservation_id;
END
$$;
