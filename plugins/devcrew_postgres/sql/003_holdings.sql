-- devcrew PostgreSQL schema, version 3: a task's slot and allocation in one row of
-- `holdings`, the agent's totals in a narrow row of `agent_totals` (as the SQLite
-- store's schema 8 does), so allocating and releasing never touch the wide `agents` row.
--
-- * A `holdings` row (agent_id, task_id) is what a task holds on an agent: its load slot
--   (`slot_at` is when it took it; NULL: none) and/or its allocation (`created_at` and the
--   allocation's fields as columns; `created_at` NULL: none, amounts 0). The row exists
--   while the task holds either. `holds_slot`: the allocation took the slot itself and
--   frees it on release (when the task still holds one there).
-- * An `agent_totals` row exists exactly while the agent is registered: its load (slots
--   held), the number and sums of its allocations, what its counted reservations hold
--   (`resv_*`, with the expiry bookkeeping of version 2), and its limits copied from the
--   agent record (NULL: unlimited) by the triggers on `agents`. Every function changes
--   the totals in the transaction that changes the rows they sum, under the totals row's
--   lock; a test checks them against the sums.
-- * Locks. The common allocate and release (the "fast paths") change the task's row
--   first and the totals row last, so the hot totals row is locked only for its own
--   UPDATE and the commit (locking it first, as version 2 locked the agent row, halved
--   the pairs per second at 4 clients). Every other call that locks an agent's totals
--   row takes the agent's advisory lock exclusively first (devcrew_lock_agent); the fast
--   paths take it shared. So no call ever holds a totals row while it waits for a task
--   row that a fast path holds: the fast paths of an agent and its other calls exclude
--   each other, and the fast paths wait only for totals rows, never while holding one.
--   A fast path that cannot decide alone changes nothing and says so; the store then
--   calls the general function in a transaction of its own (never upgrading the shared
--   lock, which could deadlock). Inside a Store.batch only the general functions run.
-- * Lock order otherwise: the advisory lock 'batch', then 'log', then agents' advisory
--   locks and totals rows (several in agent_id order), then `agents` rows, then task
--   rows and other rows. put_agent and update_agent lock the totals row before the agent
--   row, because their trigger writes it.
-- * Amounts stay `numeric` (exact sums; see version 2). Allocations still outlive their
--   agent: a re-registered agent's totals are computed from the rows it finds.
--
-- Upgrading: stop the processes of an older devcrew first (their functions are gone).

CREATE TABLE holdings (
    agent_id text COLLATE "C" NOT NULL,
    task_id text COLLATE "C" NOT NULL,
    slot_at double precision,
    created_at double precision,
    cpu_cores numeric NOT NULL DEFAULT 0,
    memory_mb numeric NOT NULL DEFAULT 0,
    disk_mb numeric NOT NULL DEFAULT 0,
    network_mbps numeric NOT NULL DEFAULT 0,
    priority integer,
    preemptable boolean,
    reservation_id text COLLATE "C",
    holds_slot boolean NOT NULL DEFAULT false,
    PRIMARY KEY (agent_id, task_id),
    CHECK (slot_at IS NOT NULL OR created_at IS NOT NULL)
);

-- Updated at every allocate and release: room on the page keeps the updates HOT.
CREATE TABLE agent_totals (
    agent_id text COLLATE "C" PRIMARY KEY,
    load integer NOT NULL DEFAULT 0 CHECK (load >= 0),
    max_tasks integer NOT NULL,
    allocations integer NOT NULL DEFAULT 0 CHECK (allocations >= 0),
    alloc_cpu numeric NOT NULL DEFAULT 0,
    alloc_memory numeric NOT NULL DEFAULT 0,
    alloc_disk numeric NOT NULL DEFAULT 0,
    alloc_network numeric NOT NULL DEFAULT 0,
    resv_cpu numeric NOT NULL DEFAULT 0,
    resv_memory numeric NOT NULL DEFAULT 0,
    resv_disk numeric NOT NULL DEFAULT 0,
    resv_network numeric NOT NULL DEFAULT 0,
    resv_next_expiry double precision,
    resv_swept_at double precision NOT NULL DEFAULT '-Infinity',
    limit_cpu numeric,
    limit_memory numeric,
    limit_disk numeric,
    limit_network numeric
) WITH (fillfactor = 50);

-- Existing rows: allocations with the slot of their task, then slots without one.
INSERT INTO holdings (agent_id, task_id, slot_at, created_at, cpu_cores, memory_mb, disk_mb,
                      network_mbps, priority, preemptable, reservation_id, holds_slot)
SELECT a.agent_id, a.task_id, s.acquired_at, a.created_at, a.cpu_cores, a.memory_mb,
       a.disk_mb, a.network_mbps, coalesce((a.data ->> 'priority')::integer, 2),
       coalesce((a.data ->> 'preemptable')::boolean, true), a.data ->> 'reservation_id',
       a.holds_slot
FROM allocations a
LEFT JOIN load_slots s ON s.agent_id = a.agent_id AND s.task_id = a.task_id;

INSERT INTO holdings (agent_id, task_id, slot_at)
SELECT s.agent_id, s.task_id, s.acquired_at FROM load_slots s
WHERE NOT EXISTS (SELECT FROM allocations a
                  WHERE a.agent_id = s.agent_id AND a.task_id = s.task_id);

-- Totals of the registered agents: load and allocations from the rows, the reservation
-- counters as version 2 kept them (with their expiry bookkeeping).
INSERT INTO agent_totals (agent_id, load, max_tasks, allocations, alloc_cpu, alloc_memory,
                          alloc_disk, alloc_network, resv_cpu, resv_memory, resv_disk,
                          resv_network, resv_next_expiry, resv_swept_at, limit_cpu,
                          limit_memory, limit_disk, limit_network)
SELECT g.agent_id, h.load, g.max_concurrent_tasks, h.allocations, h.cpu, h.memory, h.disk,
       h.network, g.resv_cpu_cores, g.resv_memory_mb, g.resv_disk_mb, g.resv_network_mbps,
       g.resv_next_expiry, g.resv_swept_at,
       g.limit_cpu_cores, g.limit_memory_mb, g.limit_disk_mb, g.limit_network_mbps
FROM agents g
CROSS JOIN LATERAL (
    SELECT count(slot_at)::integer AS load, count(created_at)::integer AS allocations,
           coalesce(sum(cpu_cores), 0) AS cpu, coalesce(sum(memory_mb), 0) AS memory,
           coalesce(sum(disk_mb), 0) AS disk, coalesce(sum(network_mbps), 0) AS network
    FROM holdings WHERE holdings.agent_id = g.agent_id) h;

-- The functions of versions 1 and 2 that read or write what is dropped here.
DROP TRIGGER agents_start_from_held_rows ON agents;
DROP FUNCTION devcrew_agent_usage();
DROP FUNCTION devcrew_recount(text);
DROP FUNCTION devcrew_usage_of(text, boolean);
DROP FUNCTION devcrew_reserved(text, double precision);
DROP FUNCTION devcrew_allocate(text, text, text, text[], double precision, numeric, numeric,
                               numeric, numeric, double precision, jsonb);
DROP FUNCTION devcrew_release_allocation(text, text);
DROP FUNCTION devcrew_delegate(text, text, double precision, text, double precision, jsonb,
                               text, text, double precision, jsonb);
DROP FUNCTION devcrew_acquire_slots(text, text[], double precision);

DROP TABLE allocations;
DROP TABLE load_slots;
ALTER TABLE agents
    DROP COLUMN load,
    DROP COLUMN alloc_cpu_cores,
    DROP COLUMN alloc_memory_mb,
    DROP COLUMN alloc_disk_mb,
    DROP COLUMN alloc_network_mbps,
    DROP COLUMN resv_cpu_cores,
    DROP COLUMN resv_memory_mb,
    DROP COLUMN resv_disk_mb,
    DROP COLUMN resv_network_mbps,
    DROP COLUMN resv_next_expiry,
    DROP COLUMN resv_swept_at;


-- Totals -----------------------------------------------------------------------------------

-- What the rows carrying `p_agent_id` hold. `p_lock`: share-lock the rows read, so a
-- release or cancel under way is waited for (it is then gone, or counted here and
-- subtracted by that call's own UPDATE, which runs after this row is committed).
CREATE FUNCTION devcrew_usage_of(p_agent_id text, p_lock boolean,
    OUT o_load integer, OUT o_allocations integer,
    OUT o_alloc_cpu numeric, OUT o_alloc_memory numeric, OUT o_alloc_disk numeric,
    OUT o_alloc_network numeric, OUT o_resv_cpu numeric, OUT o_resv_memory numeric,
    OUT o_resv_disk numeric, OUT o_resv_network numeric,
    OUT o_next_expiry double precision, OUT o_swept_at double precision)
LANGUAGE plpgsql AS $$
BEGIN
    IF p_lock THEN
        PERFORM 1 FROM holdings WHERE agent_id = p_agent_id FOR SHARE;
        PERFORM 1 FROM reservations WHERE agent_id = p_agent_id FOR SHARE;
    END IF;
    SELECT count(slot_at), count(created_at),
           coalesce(sum(cpu_cores), 0), coalesce(sum(memory_mb), 0),
           coalesce(sum(disk_mb), 0), coalesce(sum(network_mbps), 0)
        INTO o_load, o_allocations, o_alloc_cpu, o_alloc_memory, o_alloc_disk,
             o_alloc_network
        FROM holdings WHERE agent_id = p_agent_id;
    SELECT coalesce(sum(cpu_cores) FILTER (WHERE counted), 0),
           coalesce(sum(memory_mb) FILTER (WHERE counted), 0),
           coalesce(sum(disk_mb) FILTER (WHERE counted), 0),
           coalesce(sum(network_mbps) FILTER (WHERE counted), 0),
           min(expires_at) FILTER (WHERE counted),
           coalesce(max(expires_at) FILTER (WHERE NOT counted), '-Infinity')
        INTO o_resv_cpu, o_resv_memory, o_resv_disk, o_resv_network, o_next_expiry,
             o_swept_at
        FROM reservations WHERE agent_id = p_agent_id;
END
$$;

-- Recount the sums of the agent (its totals row locked by the caller) from its rows:
-- after removing a row with an infinite amount, where subtracting would leave NaN.
CREATE FUNCTION devcrew_recount(p_agent_id text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE agent_totals t SET alloc_cpu = u.o_alloc_cpu, alloc_memory = u.o_alloc_memory,
                              alloc_disk = u.o_alloc_disk, alloc_network = u.o_alloc_network,
                              resv_cpu = u.o_resv_cpu, resv_memory = u.o_resv_memory,
                              resv_disk = u.o_resv_disk, resv_network = u.o_resv_network
        FROM devcrew_usage_of(p_agent_id, false) u
        WHERE t.agent_id = p_agent_id;
END
$$;

-- The totals row follows the agent row: a new agent's starts from the rows carrying its
-- agent_id (AFTER INSERT fires only for a row put_agent really inserted); a changed
-- agent's gets its limits; a deleted agent's goes.
CREATE FUNCTION devcrew_agent_totals() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO agent_totals (agent_id, load, max_tasks, allocations, alloc_cpu,
                                  alloc_memory, alloc_disk, alloc_network, resv_cpu,
                                  resv_memory, resv_disk, resv_network, resv_next_expiry,
                                  resv_swept_at, limit_cpu, limit_memory, limit_disk,
                                  limit_network)
            SELECT NEW.agent_id, u.o_load, NEW.max_concurrent_tasks, u.o_allocations,
                   u.o_alloc_cpu, u.o_alloc_memory, u.o_alloc_disk, u.o_alloc_network,
                   u.o_resv_cpu, u.o_resv_memory, u.o_resv_disk, u.o_resv_network,
                   u.o_next_expiry, u.o_swept_at, NEW.limit_cpu_cores, NEW.limit_memory_mb,
                   NEW.limit_disk_mb, NEW.limit_network_mbps
            FROM devcrew_usage_of(NEW.agent_id, true) u;
    ELSIF TG_OP = 'UPDATE' THEN
        UPDATE agent_totals SET max_tasks = NEW.max_concurrent_tasks,
                                limit_cpu = NEW.limit_cpu_cores,
                                limit_memory = NEW.limit_memory_mb,
                                limit_disk = NEW.limit_disk_mb,
                                limit_network = NEW.limit_network_mbps
            WHERE agent_id = NEW.agent_id
              AND (max_tasks, limit_cpu, limit_memory, limit_disk, limit_network)
                  IS DISTINCT FROM (NEW.max_concurrent_tasks, NEW.limit_cpu_cores,
                                    NEW.limit_memory_mb, NEW.limit_disk_mb,
                                    NEW.limit_network_mbps);
    ELSE
        DELETE FROM agent_totals WHERE agent_id = OLD.agent_id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER agents_totals AFTER INSERT OR UPDATE OR DELETE ON agents
    FOR EACH ROW EXECUTE FUNCTION devcrew_agent_totals();

-- The key of an agent's advisory lock (a class of its own beside devcrew_lock's; keyed
-- by the schema too). Taken shared by the fast paths, exclusively by everything else
-- before the agent's totals row.
CREATE FUNCTION devcrew_agent_key(p_agent_id text) RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT hashtext(p_agent_id || '.' || current_schema())
$$;

-- Lock an agent for a call that is not a fast path: its advisory lock, then its totals
-- row; true if the agent is registered.
CREATE FUNCTION devcrew_lock_agent(p_agent_id text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1684371044, devcrew_agent_key(p_agent_id));
    PERFORM 1 FROM agent_totals WHERE agent_id = p_agent_id FOR UPDATE;
    RETURN FOUND;
END
$$;

-- Lock the agents of `p_agent_ids`: one simply; several in agent_id order under the
-- 'batch' lock (a batch locks agents in whatever order its caller works).
CREATE OR REPLACE FUNCTION devcrew_lock_agents(p_agent_ids text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_agent_ids[1] = ALL (p_agent_ids) THEN
        PERFORM devcrew_lock_agent(p_agent_ids[1]);
    ELSE
        PERFORM devcrew_lock('batch');
        PERFORM devcrew_lock_agent(a) FROM (SELECT DISTINCT unnest(p_agent_ids) AS a) ids
            ORDER BY a;
    END IF;
END
$$;

-- What the live reservations of `p_agent_id` (its totals row locked by the caller) hold
-- at `p_now`, uncounting the expired ones as version 2 did.
CREATE FUNCTION devcrew_reserved(p_agent_id text, p_now double precision,
    OUT o_cpu numeric, OUT o_memory numeric, OUT o_disk numeric, OUT o_network numeric)
LANGUAGE plpgsql AS $$
DECLARE
    v_next double precision;
    v_swept double precision;
    v_gone record;
BEGIN
    SELECT resv_cpu, resv_memory, resv_disk, resv_network, resv_next_expiry, resv_swept_at
        INTO o_cpu, o_memory, o_disk, o_network, v_next, v_swept
        FROM agent_totals WHERE agent_id = p_agent_id;
    IF p_now < v_swept THEN
        SELECT coalesce(sum(cpu_cores), 0), coalesce(sum(memory_mb), 0),
               coalesce(sum(disk_mb), 0), coalesce(sum(network_mbps), 0)
            INTO o_cpu, o_memory, o_disk, o_network
            FROM reservations WHERE agent_id = p_agent_id AND expires_at > p_now;
        RETURN;
    END IF;
    IF v_next <= p_now THEN
        WITH gone AS (
            UPDATE reservations SET counted = false
                WHERE agent_id = p_agent_id AND counted AND expires_at <= p_now
                RETURNING cpu_cores, memory_mb, disk_mb, network_mbps)
        SELECT coalesce(sum(cpu_cores), 0) AS cpu, coalesce(sum(memory_mb), 0) AS memory,
               coalesce(sum(disk_mb), 0) AS disk, coalesce(sum(network_mbps), 0) AS network
            INTO v_gone FROM gone;
        UPDATE agent_totals SET resv_cpu = resv_cpu - v_gone.cpu,
                                resv_memory = resv_memory - v_gone.memory,
                                resv_disk = resv_disk - v_gone.disk,
                                resv_network = resv_network - v_gone.network,
                                resv_next_expiry = (SELECT min(r.expires_at)
                                                    FROM reservations r
                                                    WHERE r.agent_id = p_agent_id
                                                      AND r.counted),
                                resv_swept_at = p_now
            WHERE agent_id = p_agent_id;
        IF 'Infinity' IN (v_gone.cpu, v_gone.memory, v_gone.disk, v_gone.network) THEN
            PERFORM devcrew_recount(p_agent_id);
        END IF;
        SELECT resv_cpu, resv_memory, resv_disk, resv_network
            INTO o_cpu, o_memory, o_disk, o_network
            FROM agent_totals WHERE agent_id = p_agent_id;
    END IF;
END
$$;


-- Allocations ------------------------------------------------------------------------------

-- The fast path of allocate: a task that holds nothing on the agent allocates without a
-- reservation or victims. Its row goes in first (with its new slot), then one
-- conditional UPDATE of the narrow totals row checks the free slot and the limits (no
-- reservation may have expired) and adds the request. 'allocated'; or 'general' with
-- nothing changed (the task holds something there, the agent is unknown, or it does not
-- fit as far as this check can tell): the store then calls devcrew_allocate.
CREATE FUNCTION devcrew_allocate_fast(
    p_agent_id text, p_task_id text, p_now double precision, p_cpu numeric,
    p_memory numeric, p_disk numeric, p_network numeric, p_created_at double precision,
    p_priority integer, p_preemptable boolean)
RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(1684371044, devcrew_agent_key(p_agent_id));
    -- Ignored exactly when the task holds its slot or an allocation already.
    INSERT INTO holdings (agent_id, task_id, slot_at, created_at, cpu_cores, memory_mb,
                          disk_mb, network_mbps, priority, preemptable, holds_slot)
        VALUES (p_agent_id, p_task_id, p_now, p_created_at, p_cpu, p_memory, p_disk,
                p_network, p_priority, p_preemptable, true)
        ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN 'general';
    END IF;
    UPDATE agent_totals SET load = load + 1, allocations = allocations + 1,
                            alloc_cpu = alloc_cpu + p_cpu,
                            alloc_memory = alloc_memory + p_memory,
                            alloc_disk = alloc_disk + p_disk,
                            alloc_network = alloc_network + p_network
        WHERE agent_id = p_agent_id AND load < max_tasks
          AND p_now >= resv_swept_at
          AND (resv_next_expiry IS NULL OR resv_next_expiry > p_now)
          AND (limit_cpu IS NULL OR alloc_cpu + resv_cpu + p_cpu <= limit_cpu + 1e-9)
          AND (limit_memory IS NULL
               OR alloc_memory + resv_memory + p_memory <= limit_memory + 1e-9)
          AND (limit_disk IS NULL OR alloc_disk + resv_disk + p_disk <= limit_disk + 1e-9)
          AND (limit_network IS NULL
               OR alloc_network + resv_network + p_network <= limit_network + 1e-9);
    IF FOUND THEN
        RETURN 'allocated';
    END IF;
    DELETE FROM holdings WHERE agent_id = p_agent_id AND task_id = p_task_id;
    RETURN 'general';
END
$$;

-- Record an allocation if it fits, taking the task's load slot unless it holds one there;
-- with `p_victims` (distinct task IDs), remove their allocations first, all or nothing.
-- o_status: 'missing' (unknown agent), 'existing' (the task's allocation, unchanged, in
-- the other outputs), 'full' or 'allocated' (o_holds_slot says whether it took the slot).
-- A live reservation named by p_reservation_id on the same agent is redeemed.
--
-- The general path of allocate (devcrew_allocate_fast is the common one): it decides
-- with the agent locked (devcrew_lock_agent).
CREATE FUNCTION devcrew_allocate(
    p_agent_id text, p_task_id text, p_reservation_id text, p_victims text[],
    p_now double precision, p_cpu numeric, p_memory numeric, p_disk numeric,
    p_network numeric, p_created_at double precision, p_priority integer,
    p_preemptable boolean,
    OUT o_status text, OUT o_holds_slot boolean, OUT o_created_at double precision,
    OUT o_cpu double precision, OUT o_memory double precision, OUT o_disk double precision,
    OUT o_network double precision, OUT o_priority integer, OUT o_preemptable boolean,
    OUT o_reservation_id text)
LANGUAGE plpgsql AS $$
DECLARE
    v_totals record;
    v_row record;
    v_resv record;
    v_victims record;
    v_redeem record;
    v_redeeming boolean := false;
    v_found boolean;
    v_held boolean;
BEGIN
    p_victims := coalesce(p_victims, '{}');
    PERFORM devcrew_lock_agent(p_agent_id);
    SELECT * INTO v_totals FROM agent_totals WHERE agent_id = p_agent_id;
    v_found := FOUND;
    SELECT count(*) AS found,
           coalesce(sum(h.cpu_cores), 0) AS cpu, coalesce(sum(h.memory_mb), 0) AS memory,
           coalesce(sum(h.disk_mb), 0) AS disk, coalesce(sum(h.network_mbps), 0) AS network,
           count(*) FILTER (WHERE h.holds_slot AND h.slot_at IS NOT NULL) AS slots
        INTO v_victims
        FROM holdings h
        WHERE h.agent_id = p_agent_id AND h.task_id = ANY (p_victims)
          AND h.created_at IS NOT NULL;
    IF v_victims.found < cardinality(p_victims) THEN
        o_status := 'full';  -- a victim is gone: the caller's view is stale
        RETURN;
    END IF;
    IF NOT v_found THEN
        o_status := 'missing';
        RETURN;
    END IF;
    SELECT h.slot_at, h.created_at, h.cpu_cores, h.memory_mb, h.disk_mb, h.network_mbps,
           h.priority, h.preemptable, h.reservation_id, h.holds_slot
        INTO v_row FROM holdings h WHERE h.agent_id = p_agent_id AND h.task_id = p_task_id;
    IF FOUND AND v_row.created_at IS NOT NULL THEN
        o_status := 'existing';
        o_holds_slot := v_row.holds_slot;
        o_created_at := v_row.created_at;
        o_cpu := v_row.cpu_cores;
        o_memory := v_row.memory_mb;
        o_disk := v_row.disk_mb;
        o_network := v_row.network_mbps;
        o_priority := v_row.priority;
        o_preemptable := v_row.preemptable;
        o_reservation_id := v_row.reservation_id;
        RETURN;
    END IF;
    -- A task row without an allocation holds the task's slot.
    v_held := FOUND;
    SELECT * INTO v_resv FROM devcrew_reserved(p_agent_id, p_now);
    IF p_reservation_id IS NOT NULL THEN
        SELECT r.reservation_id, r.counted, r.cpu_cores AS cpu, r.memory_mb AS memory,
               r.disk_mb AS disk, r.network_mbps AS network
            INTO v_redeem FROM reservations r
            WHERE r.reservation_id = p_reservation_id AND r.agent_id = p_agent_id
              AND r.expires_at > p_now;
        v_redeeming := FOUND;
        IF v_redeeming THEN  -- live, so part of v_resv: its capacity becomes the allocation's
            v_resv.o_cpu := v_resv.o_cpu - v_redeem.cpu;
            v_resv.o_memory := v_resv.o_memory - v_redeem.memory;
            v_resv.o_disk := v_resv.o_disk - v_redeem.disk;
            v_resv.o_network := v_resv.o_network - v_redeem.network;
        END IF;
    END IF;
    IF NOT (
        (v_totals.limit_cpu IS NULL OR v_totals.alloc_cpu - v_victims.cpu
         + v_resv.o_cpu + p_cpu <= v_totals.limit_cpu + 1e-9)
        AND (v_totals.limit_memory IS NULL OR v_totals.alloc_memory - v_victims.memory
             + v_resv.o_memory + p_memory <= v_totals.limit_memory + 1e-9)
        AND (v_totals.limit_disk IS NULL OR v_totals.alloc_disk - v_victims.disk
             + v_resv.o_disk + p_disk <= v_totals.limit_disk + 1e-9)
        AND (v_totals.limit_network IS NULL OR v_totals.alloc_network - v_victims.network
             + v_resv.o_network + p_network <= v_totals.limit_network + 1e-9)
    ) THEN
        o_status := 'full';
        RETURN;
    END IF;
    IF NOT v_held AND v_totals.load - v_victims.slots >= v_totals.max_tasks THEN
        o_status := 'full';
        RETURN;
    END IF;

    -- It fits: apply. A victim's row goes unless it keeps a slot the task held before it
    -- allocated; that row only loses its allocation.
    IF v_victims.found > 0 THEN
        DELETE FROM holdings
            WHERE agent_id = p_agent_id AND task_id = ANY (p_victims)
              AND created_at IS NOT NULL AND (slot_at IS NULL OR holds_slot);
        UPDATE holdings SET created_at = NULL, cpu_cores = 0, memory_mb = 0, disk_mb = 0,
                            network_mbps = 0, priority = NULL, preemptable = NULL,
                            reservation_id = NULL, holds_slot = false
            WHERE agent_id = p_agent_id AND task_id = ANY (p_victims)
              AND created_at IS NOT NULL;
    END IF;
    IF v_redeeming THEN
        DELETE FROM reservations WHERE reservation_id = v_redeem.reservation_id;
        IF v_redeem.counted THEN
            UPDATE agent_totals SET resv_cpu = resv_cpu - v_redeem.cpu,
                                    resv_memory = resv_memory - v_redeem.memory,
                                    resv_disk = resv_disk - v_redeem.disk,
                                    resv_network = resv_network - v_redeem.network
                WHERE agent_id = p_agent_id;
        END IF;
    END IF;
    IF v_held THEN
        UPDATE holdings SET created_at = p_created_at, cpu_cores = p_cpu,
                            memory_mb = p_memory, disk_mb = p_disk, network_mbps = p_network,
                            priority = p_priority, preemptable = p_preemptable,
                            reservation_id = p_reservation_id, holds_slot = false
            WHERE agent_id = p_agent_id AND task_id = p_task_id;
    ELSE
        INSERT INTO holdings (agent_id, task_id, slot_at, created_at, cpu_cores, memory_mb,
                              disk_mb, network_mbps, priority, preemptable, reservation_id,
                              holds_slot)
            VALUES (p_agent_id, p_task_id, p_now, p_created_at, p_cpu, p_memory, p_disk,
                    p_network, p_priority, p_preemptable, p_reservation_id, true);
    END IF;
    o_holds_slot := NOT v_held;
    UPDATE agent_totals SET load = load - v_victims.slots + (CASE WHEN v_held THEN 0 ELSE 1 END),
                            allocations = allocations - v_victims.found + 1,
                            alloc_cpu = alloc_cpu - v_victims.cpu + p_cpu,
                            alloc_memory = alloc_memory - v_victims.memory + p_memory,
                            alloc_disk = alloc_disk - v_victims.disk + p_disk,
                            alloc_network = alloc_network - v_victims.network + p_network
        WHERE agent_id = p_agent_id;
    -- An infinite amount removed leaves NaN behind: recount. (v_redeem is only read when
    -- it was assigned.)
    v_found := 'Infinity' IN (v_victims.cpu, v_victims.memory, v_victims.disk,
                              v_victims.network);
    IF v_redeeming AND NOT v_found THEN
        v_found := 'Infinity' IN (v_redeem.cpu, v_redeem.memory, v_redeem.disk,
                                  v_redeem.network);
    END IF;
    IF v_found THEN
        PERFORM devcrew_recount(p_agent_id);
    END IF;
    o_status := 'allocated';
END
$$;

-- Remove the task's allocation (freeing the slot it took, if the task still holds it):
-- the allocation's fields, or a row of NULLs when it has none. Its own row first, then
-- the totals row, as a fast path (under the agent's shared advisory lock); with
-- `p_general` (inside a batch) the agent is locked first, as every other call does.
CREATE FUNCTION devcrew_release_allocation(p_agent_id text, p_task_id text,
    p_general boolean,
    OUT o_holds_slot boolean, OUT o_created_at double precision,
    OUT o_cpu double precision, OUT o_memory double precision, OUT o_disk double precision,
    OUT o_network double precision, OUT o_priority integer, OUT o_preemptable boolean,
    OUT o_reservation_id text)
LANGUAGE plpgsql AS $$
DECLARE
    v_gone record;
    v_freed integer := 0;
BEGIN
    IF p_general THEN
        PERFORM devcrew_lock_agent(p_agent_id);
    ELSE
        PERFORM pg_advisory_xact_lock_shared(1684371044, devcrew_agent_key(p_agent_id));
    END IF;
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


-- Reservations -----------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION devcrew_reserve(
    p_reservation_id text, p_agent_id text, p_now double precision,
    p_expires_at double precision, p_created_at double precision,
    p_cpu numeric, p_memory numeric, p_disk numeric, p_network numeric, p_data jsonb)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_totals record;
    v_resv record;
BEGIN
    PERFORM devcrew_lock_agent(p_agent_id);
    SELECT limit_cpu, limit_memory, limit_disk, limit_network,
           alloc_cpu, alloc_memory, alloc_disk, alloc_network
        INTO v_totals FROM agent_totals WHERE agent_id = p_agent_id;
    IF NOT FOUND THEN
        RETURN 'missing';
    END IF;
    IF EXISTS (SELECT FROM reservations WHERE reservation_id = p_reservation_id) THEN
        RETURN 'exists';
    END IF;
    SELECT * INTO v_resv FROM devcrew_reserved(p_agent_id, p_now);
    IF NOT (
        (v_totals.limit_cpu IS NULL OR v_totals.alloc_cpu + v_resv.o_cpu + p_cpu
         <= v_totals.limit_cpu + 1e-9)
        AND (v_totals.limit_memory IS NULL OR v_totals.alloc_memory + v_resv.o_memory
             + p_memory <= v_totals.limit_memory + 1e-9)
        AND (v_totals.limit_disk IS NULL OR v_totals.alloc_disk + v_resv.o_disk + p_disk
             <= v_totals.limit_disk + 1e-9)
        AND (v_totals.limit_network IS NULL OR v_totals.alloc_network + v_resv.o_network
             + p_network <= v_totals.limit_network + 1e-9)
    ) THEN
        RETURN 'full';
    END IF;
    -- Two reservations racing for one new id on different agents: the loser is told
    -- 'exists', not failed with a unique violation.
    INSERT INTO reservations (reservation_id, agent_id, expires_at, created_at, cpu_cores,
                              memory_mb, disk_mb, network_mbps, data)
        VALUES (p_reservation_id, p_agent_id, p_expires_at, p_created_at, p_cpu, p_memory,
                p_disk, p_network, p_data)
        ON CONFLICT (reservation_id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN 'exists';
    END IF;
    UPDATE agent_totals SET resv_cpu = resv_cpu + p_cpu, resv_memory = resv_memory + p_memory,
                            resv_disk = resv_disk + p_disk,
                            resv_network = resv_network + p_network,
                            resv_next_expiry = least(resv_next_expiry, p_expires_at)
        WHERE agent_id = p_agent_id;
    RETURN 'reserved';
END
$$;

CREATE OR REPLACE FUNCTION devcrew_cancel_reservation(p_reservation_id text)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_agent_id text;
    v_gone record;
BEGIN
    SELECT agent_id INTO v_agent_id FROM reservations WHERE reservation_id = p_reservation_id;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    PERFORM devcrew_lock_agent(v_agent_id);
    -- Only on the agent locked: cancelled by another call (and maybe made again, on
    -- another agent) while this one waited for the lock, it is gone as far as this call
    -- goes, which may be ordered right after that cancel.
    DELETE FROM reservations WHERE reservation_id = p_reservation_id
                                AND agent_id = v_agent_id
        RETURNING counted, cpu_cores, memory_mb, disk_mb, network_mbps INTO v_gone;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF v_gone.counted THEN
        UPDATE agent_totals SET resv_cpu = resv_cpu - v_gone.cpu_cores,
                                resv_memory = resv_memory - v_gone.memory_mb,
                                resv_disk = resv_disk - v_gone.disk_mb,
                                resv_network = resv_network - v_gone.network_mbps
            WHERE agent_id = v_agent_id;
        IF 'Infinity' IN (v_gone.cpu_cores, v_gone.memory_mb, v_gone.disk_mb,
                          v_gone.network_mbps) THEN
            PERFORM devcrew_recount(v_agent_id);
        END IF;
    END IF;
    RETURN true;
END
$$;

-- As in version 2: the agents concerned are locked first (devcrew_lock_agents, now
-- their totals rows); the totals are changed by a statement of their own, after the
-- delete, whose snapshot also sees a totals row that a put_agent inserted meanwhile.
CREATE OR REPLACE FUNCTION devcrew_expire_reservations(p_now double precision)
RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    v_agent_ids text[];
    v_gone record;
BEGIN
    SELECT array_agg(DISTINCT agent_id ORDER BY agent_id) INTO v_agent_ids
        FROM reservations WHERE expires_at <= p_now;
    IF v_agent_ids IS NULL THEN
        RETURN;
    END IF;
    PERFORM devcrew_lock_agents(v_agent_ids);
    WITH gone AS (
        DELETE FROM reservations
            WHERE expires_at <= p_now AND agent_id = ANY (v_agent_ids)
            RETURNING agent_id, counted, cpu_cores, memory_mb, disk_mb, network_mbps, data)
    SELECT array_agg(data::text) AS data,
           array_agg(agent_id) FILTER (WHERE counted) AS agent_ids,
           array_agg(cpu_cores) FILTER (WHERE counted) AS cpu,
           array_agg(memory_mb) FILTER (WHERE counted) AS memory,
           array_agg(disk_mb) FILTER (WHERE counted) AS disk,
           array_agg(network_mbps) FILTER (WHERE counted) AS network
        INTO v_gone FROM gone;
    IF v_gone.agent_ids IS NOT NULL THEN
        UPDATE agent_totals t SET resv_cpu = t.resv_cpu - f.cpu,
                                  resv_memory = t.resv_memory - f.memory,
                                  resv_disk = t.resv_disk - f.disk,
                                  resv_network = t.resv_network - f.network
            FROM (SELECT g.agent_id, sum(g.cpu) AS cpu, sum(g.memory) AS memory,
                         sum(g.disk) AS disk, sum(g.network) AS network
                  FROM unnest(v_gone.agent_ids, v_gone.cpu, v_gone.memory, v_gone.disk,
                              v_gone.network) AS g (agent_id, cpu, memory, disk, network)
                  GROUP BY g.agent_id) f
            WHERE t.agent_id = f.agent_id;
        -- Infinity minus an infinite amount removed is NaN (numeric NaN equals NaN).
        PERFORM devcrew_recount(agent_id) FROM agent_totals
            WHERE agent_id = ANY (v_gone.agent_ids)
              AND 'NaN' IN (resv_cpu, resv_memory, resv_disk, resv_network);
    END IF;
    RETURN QUERY SELECT unnest(v_gone.data);
END
$$;


-- Load slots -------------------------------------------------------------------------------

-- Take a slot for each task, in order, as capacity allows: (acquired, already_held, load
-- afterwards, max_concurrent_tasks) per task; one row of NULLs for an unknown agent.
CREATE FUNCTION devcrew_acquire_slots(p_agent_id text, p_task_ids text[], p_now double precision)
RETURNS TABLE (o_acquired boolean, o_already_held boolean, o_load integer, o_limit integer)
LANGUAGE plpgsql AS $$
DECLARE
    v_limit integer;
    v_load integer;
    v_added integer := 0;
    v_task text;
BEGIN
    PERFORM devcrew_lock_agent(p_agent_id);
    SELECT t.max_tasks, t.load INTO v_limit, v_load
        FROM agent_totals t WHERE t.agent_id = p_agent_id;
    IF NOT FOUND THEN
        RETURN QUERY SELECT NULL::boolean, NULL::boolean, NULL::integer, NULL::integer;
        RETURN;
    END IF;
    FOREACH v_task IN ARRAY p_task_ids LOOP
        o_limit := v_limit;
        o_already_held := EXISTS (
            SELECT FROM holdings h
            WHERE h.agent_id = p_agent_id AND h.task_id = v_task AND h.slot_at IS NOT NULL);
        IF o_already_held THEN
            o_acquired := true;
        ELSIF v_load < v_limit THEN
            -- A row without a slot holds the task's allocation (whose holds_slot then
            -- says whether releasing it frees this slot, as before).
            INSERT INTO holdings AS h (agent_id, task_id, slot_at)
                VALUES (p_agent_id, v_task, p_now)
                ON CONFLICT (agent_id, task_id) DO UPDATE SET slot_at = excluded.slot_at;
            v_load := v_load + 1;
            v_added := v_added + 1;
            o_acquired := true;
        ELSE
            o_acquired := false;
        END IF;
        o_load := v_load;
        RETURN NEXT;
    END LOOP;
    IF v_added > 0 THEN
        UPDATE agent_totals SET load = load + v_added WHERE agent_id = p_agent_id;
    END IF;
END
$$;

-- Free the slot of (p_agent_id, p_task_id), its totals row locked by the caller: the row
-- goes, or only loses its slot when it holds an allocation. True if a slot was held.
CREATE FUNCTION devcrew_free_slot(p_agent_id text, p_task_id text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM holdings
        WHERE agent_id = p_agent_id AND task_id = p_task_id AND slot_at IS NOT NULL
          AND created_at IS NULL;
    IF NOT FOUND THEN
        UPDATE holdings SET slot_at = NULL
            WHERE agent_id = p_agent_id AND task_id = p_task_id AND slot_at IS NOT NULL;
        IF NOT FOUND THEN
            RETURN false;
        END IF;
    END IF;
    UPDATE agent_totals SET load = load - 1 WHERE agent_id = p_agent_id;
    RETURN true;
END
$$;

CREATE OR REPLACE FUNCTION devcrew_release_slots(p_agent_ids text[], p_task_ids text[])
RETURNS boolean[]
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer := coalesce(array_length(p_agent_ids, 1), 0);
    v_freed boolean[] := array_fill(false, ARRAY[v_count]);
BEGIN
    PERFORM devcrew_lock_agents(p_agent_ids);
    FOR i IN 1 .. v_count LOOP
        v_freed[i] := devcrew_free_slot(p_agent_ids[i], p_task_ids[i]);
    END LOOP;
    RETURN v_freed;
END
$$;

-- Hand the slot of each (agent, from_task) on to to_task without the load changing (if
-- to_task holds a slot there already, from_task's is freed instead); true where
-- from_task held a slot.
CREATE OR REPLACE FUNCTION devcrew_transfer_slots(p_agent_ids text[], p_from_tasks text[],
                                                  p_to_tasks text[])
RETURNS boolean[]
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer := coalesce(array_length(p_agent_ids, 1), 0);
    v_moved boolean[] := array_fill(false, ARRAY[v_count]);
    v_agent text;
    v_from text;
    v_to text;
    v_at double precision;
BEGIN
    PERFORM devcrew_lock_agents(p_agent_ids);
    FOR i IN 1 .. v_count LOOP
        v_agent := p_agent_ids[i];
        v_from := p_from_tasks[i];
        v_to := p_to_tasks[i];
        SELECT slot_at INTO v_at FROM holdings
            WHERE agent_id = v_agent AND task_id = v_from AND slot_at IS NOT NULL;
        IF NOT FOUND THEN
            CONTINUE;
        END IF;
        IF v_from = v_to THEN
            v_moved[i] := true;
        ELSIF EXISTS (SELECT FROM holdings
                      WHERE agent_id = v_agent AND task_id = v_to AND slot_at IS NOT NULL) THEN
            v_moved[i] := devcrew_free_slot(v_agent, v_from);
        ELSE
            -- Move it: off from_task's row (which goes unless it holds an allocation), onto
            -- to_task's (new, or holding an allocation only). The load is unchanged.
            DELETE FROM holdings
                WHERE agent_id = v_agent AND task_id = v_from AND created_at IS NULL;
            UPDATE holdings SET slot_at = NULL WHERE agent_id = v_agent AND task_id = v_from;
            INSERT INTO holdings (agent_id, task_id, slot_at) VALUES (v_agent, v_to, v_at)
                ON CONFLICT (agent_id, task_id) DO UPDATE SET slot_at = excluded.slot_at;
            v_moved[i] := true;
        END IF;
    END LOOP;
    RETURN v_moved;
END
$$;


-- Delegations ------------------------------------------------------------------------------

CREATE FUNCTION devcrew_delegate(
    p_agent_id text, p_task_id text, p_now double precision,
    p_status text, p_delegated_at double precision, p_data jsonb,
    p_audit_kind text, p_audit_workflow_id text, p_audit_created_at double precision,
    p_audit_data jsonb)
RETURNS TABLE (o_acquired boolean, o_already_held boolean, o_load integer, o_limit integer,
               o_active_agent text)
LANGUAGE plpgsql AS $$
BEGIN
    IF p_audit_kind IS NOT NULL THEN
        PERFORM devcrew_lock('log');
    END IF;
    SELECT d.agent_id INTO o_active_agent FROM delegations d
        WHERE d.task_id = p_task_id AND d.status = 'active' AND d.agent_id <> p_agent_id;
    IF FOUND THEN
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT s.o_acquired, s.o_already_held, s.o_load, s.o_limit
        INTO o_acquired, o_already_held, o_load, o_limit
        FROM devcrew_acquire_slots(p_agent_id, ARRAY[p_task_id], p_now) s;
    IF o_acquired IS NOT TRUE THEN  -- full, or (NULL) an unknown agent: store nothing
        RETURN NEXT;
        RETURN;
    END IF;
    -- The guard settles a race the check above cannot see: a delegation of the task to
    -- another agent committed meanwhile is kept, and the slot taken here given back.
    INSERT INTO delegations AS d (task_id, agent_id, status, delegated_at, data)
        VALUES (p_task_id, p_agent_id, p_status, p_delegated_at, p_data)
        ON CONFLICT (task_id) DO UPDATE SET agent_id = excluded.agent_id,
            status = excluded.status, delegated_at = excluded.delegated_at,
            data = excluded.data
        WHERE d.status <> 'active' OR d.agent_id = excluded.agent_id;
    IF NOT FOUND THEN
        IF NOT o_already_held THEN
            PERFORM devcrew_free_slot(p_agent_id, p_task_id);
        END IF;
        SELECT d.agent_id INTO o_active_agent FROM delegations d WHERE d.task_id = p_task_id;
        RETURN NEXT;
        RETURN;
    END IF;
    IF p_audit_kind IS NOT NULL THEN
        INSERT INTO audit (kind, workflow_id, created_at, data)
            VALUES (p_audit_kind, p_audit_workflow_id, p_audit_created_at, p_audit_data);
    END IF;
    RETURN NEXT;
END
$$;

CREATE OR REPLACE FUNCTION devcrew_complete_delegation(
    p_agent_id text, p_task_id text, p_patch jsonb,
    p_audit_kind text, p_audit_workflow_id text, p_audit_created_at double precision,
    p_audit_data jsonb)
RETURNS TABLE (o_data text, o_completed_now boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    IF p_audit_kind IS NOT NULL THEN
        PERFORM devcrew_lock('log');
    END IF;
    PERFORM devcrew_lock_agent(p_agent_id);
    SELECT d.status, d.data::text INTO v_status, o_data FROM delegations d
        WHERE d.task_id = p_task_id AND d.agent_id = p_agent_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF v_status = 'completed' THEN
        o_completed_now := false;
        RETURN NEXT;
        RETURN;
    END IF;
    PERFORM devcrew_free_slot(p_agent_id, p_task_id);
    UPDATE delegations SET status = 'completed', data = data || p_patch
        WHERE task_id = p_task_id RETURNING data::text INTO o_data;
    IF p_audit_kind IS NOT NULL THEN
        INSERT INTO audit (kind, workflow_id, created_at, data)
            VALUES (p_audit_kind, p_audit_workflow_id, p_audit_created_at, p_audit_data);
    END IF;
    o_completed_now := true;
    RETURN NEXT;
END
$$;

-- Remove an agent (its trigger removes its totals row) and its slots: rows holding a slot
-- only go, rows with an allocation keep it (allocations outlive their agent).
CREATE OR REPLACE FUNCTION devcrew_delete_agent(p_agent_id text)
RETURNS TABLE (o_data text, o_tasks text[])
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM devcrew_lock_agent(p_agent_id);
    DELETE FROM agents WHERE agent_id = p_agent_id RETURNING data::text INTO o_data;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT coalesce(array_agg(task_id ORDER BY slot_at, task_id), '{}') INTO o_tasks
        FROM holdings WHERE agent_id = p_agent_id AND slot_at IS NOT NULL;
    DELETE FROM holdings
        WHERE agent_id = p_agent_id AND slot_at IS NOT NULL AND created_at IS NULL;
    UPDATE holdings SET slot_at = NULL WHERE agent_id = p_agent_id AND slot_at IS NOT NULL;
    RETURN NEXT;
END
$$;
