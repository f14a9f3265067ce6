-- devcrew PostgreSQL schema, version 2: allocations hold load slots, per-agent usage
-- counters, preemption, waits.
--
-- * An allocation takes its task's load slot in the same step unless the task holds one
--   there already (`allocations.holds_slot` says which), and frees it on release.
-- * Each agent row carries what its allocations and its counted reservations use
--   (`alloc_*`, `resv_*`), changed by every function that changes either, in the same
--   transaction and under the agent's row lock, so a capacity check reads one row
--   instead of summing the agent's allocations and reservations.
-- * Amounts, limits and counters are `numeric`: a float parameter arrives as the
--   decimal literal Python prints for it, and adding then subtracting the same numeric
--   amount is exact, so the counters never drift the way float sums would after many
--   allocate/release pairs. (An infinite amount would leave NaN behind when subtracted:
--   removing one recounts the agent from its rows instead, see devcrew_recount.)
-- * Expiry without a clock: a reservation is "counted" until a capacity check at a
--   `now` past its expiry uncounts it (`reservations.counted`; the row stays, so
--   get_reservation and expire_reservations still see it). `resv_next_expiry` is a
--   lower bound of the expiry of the agent's counted reservations (NULL: none), so a
--   check only looks at reservations when one may have expired; `resv_swept_at` is the
--   latest `now` used to uncount (every uncounted reservation expires at or before it).
--   A check at a `now` before `resv_swept_at` (callers' clocks are not ordered) sums the
--   agent's live reservations instead, so the answer is always exact for its `now`.
-- * Allocations and reservations outlive a deleted agent. A new agent row starts from
--   the allocations and counted reservations that carry its agent_id (a trigger), so a
--   re-registered agent sees what its old tasks still hold, as in the other backends.
--
-- Upgrading: stop the processes of an older devcrew before the first one of this
-- version opens the database; their release_allocation deletes rows without the
-- counters (their allocate fails: its function is gone).

ALTER TABLE agents
    ALTER COLUMN limit_cpu_cores TYPE numeric,
    ALTER COLUMN limit_memory_mb TYPE numeric,
    ALTER COLUMN limit_disk_mb TYPE numeric,
    ALTER COLUMN limit_network_mbps TYPE numeric,
    ADD COLUMN alloc_cpu_cores numeric NOT NULL DEFAULT 0,
    ADD COLUMN alloc_memory_mb numeric NOT NULL DEFAULT 0,
    ADD COLUMN alloc_disk_mb numeric NOT NULL DEFAULT 0,
    ADD COLUMN alloc_network_mbps numeric NOT NULL DEFAULT 0,
    ADD COLUMN resv_cpu_cores numeric NOT NULL DEFAULT 0,
    ADD COLUMN resv_memory_mb numeric NOT NULL DEFAULT 0,
    ADD COLUMN resv_disk_mb numeric NOT NULL DEFAULT 0,
    ADD COLUMN resv_network_mbps numeric NOT NULL DEFAULT 0,
    ADD COLUMN resv_next_expiry double precision,
    ADD COLUMN resv_swept_at double precision NOT NULL DEFAULT '-Infinity';

-- Allocations made before this version took no slot.
ALTER TABLE allocations
    ALTER COLUMN cpu_cores TYPE numeric,
    ALTER COLUMN memory_mb TYPE numeric,
    ALTER COLUMN disk_mb TYPE numeric,
    ALTER COLUMN network_mbps TYPE numeric,
    ADD COLUMN holds_slot boolean NOT NULL DEFAULT false;

ALTER TABLE reservations
    ALTER COLUMN cpu_cores TYPE numeric,
    ALTER COLUMN memory_mb TYPE numeric,
    ALTER COLUMN disk_mb TYPE numeric,
    ALTER COLUMN network_mbps TYPE numeric,
    ADD COLUMN counted boolean NOT NULL DEFAULT true;

-- This index holds both key columns of the primary key after a leading created_at, so
-- without statistics the planner may pick it for a lookup by (agent_id, task_id) and
-- read all of it (seen: release_allocation slowing down as the index grew). Listings
-- sort the few live allocations instead.
DROP INDEX allocations_by_creation;

-- Tasks waiting for capacity (the wait-for graph of deadlock detection). Listed in
-- (since, agent_id, task_id) order by a sort: an index on that would be the same trap.
CREATE TABLE waits (
    agent_id text COLLATE "C" NOT NULL,
    task_id text COLLATE "C" NOT NULL,
    since double precision NOT NULL,
    data jsonb NOT NULL,
    PRIMARY KEY (agent_id, task_id)
);

-- Replaced by the counters, and by functions taking numeric amounts.
DROP FUNCTION devcrew_allocate(text, text, text, double precision, double precision,
                               double precision, double precision, double precision,
                               double precision, jsonb);
DROP FUNCTION devcrew_reserve(text, text, double precision, double precision,
                              double precision, double precision, double precision,
                              double precision, double precision, jsonb);
DROP FUNCTION devcrew_fits(text, double precision, text, double precision, double precision,
                           double precision, double precision);


-- Usage counters ---------------------------------------------------------------------------

-- Set the counters of `p_agent_id` (its row locked by the caller, or being inserted by
-- the trigger below) from its rows. `p_lock`: share-lock the rows read, so a release or
-- cancel of one that is under way is waited for (it is then gone, or counted here and
-- subtracted by that call's own UPDATE, which runs after this row is committed).
CREATE FUNCTION devcrew_usage_of(p_agent_id text, p_lock boolean,
    OUT o_alloc_cpu numeric, OUT o_alloc_memory numeric, OUT o_alloc_disk numeric,
    OUT o_alloc_network numeric, OUT o_resv_cpu numeric, OUT o_resv_memory numeric,
    OUT o_resv_disk numeric, OUT o_resv_network numeric,
    OUT o_next_expiry double precision, OUT o_swept_at double precision)
LANGUAGE plpgsql AS $$
BEGIN
    IF p_lock THEN
        PERFORM 1 FROM allocations WHERE agent_id = p_agent_id FOR SHARE;
        PERFORM 1 FROM reservations WHERE agent_id = p_agent_id FOR SHARE;
    END IF;
    SELECT coalesce(sum(cpu_cores), 0), coalesce(sum(memory_mb), 0),
           coalesce(sum(disk_mb), 0), coalesce(sum(network_mbps), 0)
        INTO o_alloc_cpu, o_alloc_memory, o_alloc_disk, o_alloc_network
        FROM allocations WHERE agent_id = p_agent_id;
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

-- Recount the agent from its rows (its row locked by the caller): after removing a row
-- with an infinite amount, where subtracting would leave NaN.
CREATE FUNCTION devcrew_recount(p_agent_id text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE agents a SET alloc_cpu_cores = u.o_alloc_cpu, alloc_memory_mb = u.o_alloc_memory,
                        alloc_disk_mb = u.o_alloc_disk, alloc_network_mbps = u.o_alloc_network,
                        resv_cpu_cores = u.o_resv_cpu, resv_memory_mb = u.o_resv_memory,
                        resv_disk_mb = u.o_resv_disk, resv_network_mbps = u.o_resv_network
        FROM devcrew_usage_of(p_agent_id, false) u
        WHERE a.agent_id = p_agent_id;
END
$$;

-- A new agent row starts from what the rows carrying its agent_id hold. AFTER INSERT:
-- it fires only for a row put_agent really inserted, never for an upsert that updated
-- an existing agent (whose counters are kept) - nor for one that found the existing row
-- being deleted and inserted after all.
CREATE FUNCTION devcrew_agent_usage() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE agents a SET alloc_cpu_cores = u.o_alloc_cpu, alloc_memory_mb = u.o_alloc_memory,
                        alloc_disk_mb = u.o_alloc_disk, alloc_network_mbps = u.o_alloc_network,
                        resv_cpu_cores = u.o_resv_cpu, resv_memory_mb = u.o_resv_memory,
                        resv_disk_mb = u.o_resv_disk, resv_network_mbps = u.o_resv_network,
                        resv_next_expiry = u.o_next_expiry, resv_swept_at = u.o_swept_at
        FROM devcrew_usage_of(NEW.agent_id, true) u
        WHERE a.agent_id = NEW.agent_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER agents_start_from_held_rows AFTER INSERT ON agents
    FOR EACH ROW EXECUTE FUNCTION devcrew_agent_usage();

-- The agents deployed databases have already.
UPDATE agents a SET alloc_cpu_cores = u.o_alloc_cpu, alloc_memory_mb = u.o_alloc_memory,
                    alloc_disk_mb = u.o_alloc_disk, alloc_network_mbps = u.o_alloc_network,
                    resv_cpu_cores = u.o_resv_cpu, resv_memory_mb = u.o_resv_memory,
                    resv_disk_mb = u.o_resv_disk, resv_network_mbps = u.o_resv_network,
                    resv_next_expiry = u.o_next_expiry, resv_swept_at = u.o_swept_at
    FROM agents b CROSS JOIN LATERAL devcrew_usage_of(b.agent_id, false) u
    WHERE a.agent_id = b.agent_id;


-- What the live reservations of `p_agent_id` (its row locked by the caller) hold at
-- `p_now`. Uncounts the reservations that expired by then (adjusting the counters) when
-- `resv_next_expiry` says one may have; sums the live ones instead for a `p_now` before
-- the latest sweep.
CREATE FUNCTION devcrew_reserved(p_agent_id text, p_now double precision,
    OUT o_cpu numeric, OUT o_memory numeric, OUT o_disk numeric, OUT o_network numeric)
LANGUAGE plpgsql AS $$
DECLARE
    v_next double precision;
    v_swept double precision;
    v_gone record;
BEGIN
    SELECT resv_cpu_cores, resv_memory_mb, resv_disk_mb, resv_network_mbps,
           resv_next_expiry, resv_swept_at
        INTO o_cpu, o_memory, o_disk, o_network, v_next, v_swept
        FROM agents WHERE agent_id = p_agent_id;
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
        UPDATE agents SET resv_cpu_cores = resv_cpu_cores - v_gone.cpu,
                          resv_memory_mb = resv_memory_mb - v_gone.memory,
                          resv_disk_mb = resv_disk_mb - v_gone.disk,
                          resv_network_mbps = resv_network_mbps - v_gone.network,
                          resv_next_expiry = (SELECT min(r.expires_at) FROM reservations r
                                              WHERE r.agent_id = p_agent_id AND r.counted),
                          resv_swept_at = p_now
            WHERE agent_id = p_agent_id;
        IF 'Infinity' IN (v_gone.cpu, v_gone.memory, v_gone.disk, v_gone.network) THEN
            PERFORM devcrew_recount(p_agent_id);
        END IF;
        SELECT resv_cpu_cores, resv_memory_mb, resv_disk_mb, resv_network_mbps
            INTO o_cpu, o_memory, o_disk, o_network
            FROM agents WHERE agent_id = p_agent_id;
    END IF;
END
$$;


-- Allocations ------------------------------------------------------------------------------

-- Record an allocation if it fits, taking the task's load slot unless it holds one
-- there; with `p_victims` (distinct task IDs), remove their allocations first (freeing
-- the slots they hold), all or nothing: only when each still has an allocation on the
-- agent and, without them, the new one fits. (status, holds_slot, data): 'missing'
-- (unknown agent), 'existing' (the task's allocation, unchanged, in data), 'full' (does
-- not fit, no free slot, or a victim is gone) or 'allocated'. A live reservation named
-- by p_reservation_id on the same agent is redeemed in the same step.
--
-- The common case (no reservation to redeem, no victims, nothing expired) is one
-- conditional UPDATE of the agent row, which locks it, checks the limits and the free
-- slot and adds the request, then the inserts of the slot and allocation rows; anything
-- else (or a refusal of that UPDATE) takes the general path, which decides with the row
-- locked.
CREATE FUNCTION devcrew_allocate(
    p_agent_id text, p_task_id text, p_reservation_id text, p_victims text[],
    p_now double precision, p_cpu numeric, p_memory numeric, p_disk numeric,
    p_network numeric, p_created_at double precision, p_data jsonb,
    OUT o_status text, OUT o_holds_slot boolean, OUT o_data text)
LANGUAGE plpgsql AS $$
DECLARE
    v_agent record;
    v_resv record;
    v_victims record;
    v_redeem record;
    v_redeeming boolean := false;
    v_found boolean;
    v_held boolean;
BEGIN
    IF p_reservation_id IS NULL AND coalesce(cardinality(p_victims), 0) = 0 THEN
        UPDATE agents SET load = load + 1,
                          alloc_cpu_cores = alloc_cpu_cores + p_cpu,
                          alloc_memory_mb = alloc_memory_mb + p_memory,
                          alloc_disk_mb = alloc_disk_mb + p_disk,
                          alloc_network_mbps = alloc_network_mbps + p_network
            WHERE agent_id = p_agent_id AND load < max_concurrent_tasks
              AND p_now >= resv_swept_at
              AND (resv_next_expiry IS NULL OR resv_next_expiry > p_now)
              AND (limit_cpu_cores IS NULL
                   OR alloc_cpu_cores + resv_cpu_cores + p_cpu <= limit_cpu_cores + 1e-9)
              AND (limit_memory_mb IS NULL
                   OR alloc_memory_mb + resv_memory_mb + p_memory <= limit_memory_mb + 1e-9)
              AND (limit_disk_mb IS NULL
                   OR alloc_disk_mb + resv_disk_mb + p_disk <= limit_disk_mb + 1e-9)
              AND (limit_network_mbps IS NULL OR alloc_network_mbps + resv_network_mbps
                   + p_network <= limit_network_mbps + 1e-9);
        IF FOUND THEN
            -- Ignored exactly when the task holds its slot already.
            INSERT INTO load_slots (agent_id, task_id, acquired_at)
                VALUES (p_agent_id, p_task_id, p_now) ON CONFLICT DO NOTHING;
            o_holds_slot := FOUND;
            -- Ignored exactly when the task has an allocation there already.
            INSERT INTO allocations (agent_id, task_id, created_at, cpu_cores, memory_mb,
                                     disk_mb, network_mbps, holds_slot, data)
                -- (The store sends the record with holds_slot true, the common case.)
                VALUES (p_agent_id, p_task_id, p_created_at, p_cpu, p_memory, p_disk,
                        p_network, o_holds_slot,
                        CASE WHEN o_holds_slot
                                  = coalesce((p_data ->> 'holds_slot')::boolean, false)
                             THEN p_data
                             ELSE p_data || jsonb_build_object('holds_slot', o_holds_slot)
                        END)
                ON CONFLICT DO NOTHING;
            IF FOUND THEN
                IF NOT o_holds_slot THEN
                    UPDATE agents SET load = load - 1 WHERE agent_id = p_agent_id;
                END IF;
                o_status := 'allocated';
                RETURN;
            END IF;
            -- The task has an allocation there already: take everything back.
            IF o_holds_slot THEN
                DELETE FROM load_slots WHERE agent_id = p_agent_id AND task_id = p_task_id;
            END IF;
            UPDATE agents SET load = load - 1,
                              alloc_cpu_cores = alloc_cpu_cores - p_cpu,
                              alloc_memory_mb = alloc_memory_mb - p_memory,
                              alloc_disk_mb = alloc_disk_mb - p_disk,
                              alloc_network_mbps = alloc_network_mbps - p_network
                WHERE agent_id = p_agent_id;
            IF 'Infinity' IN (p_cpu, p_memory, p_disk, p_network) THEN
                PERFORM devcrew_recount(p_agent_id);
            END IF;
            SELECT 'existing', a.holds_slot, a.data::text INTO o_status, o_holds_slot, o_data
                FROM allocations a WHERE a.agent_id = p_agent_id AND a.task_id = p_task_id;
            RETURN;
        END IF;
    END IF;

    -- The general path, with the agent's row locked.
    p_victims := coalesce(p_victims, '{}');
    SELECT max_concurrent_tasks AS max_tasks, load, limit_cpu_cores, limit_memory_mb,
           limit_disk_mb, limit_network_mbps, alloc_cpu_cores, alloc_memory_mb,
           alloc_disk_mb, alloc_network_mbps
        INTO v_agent FROM agents WHERE agent_id = p_agent_id FOR UPDATE;
    v_found := FOUND;
    SELECT count(*) AS found,
           coalesce(sum(a.cpu_cores), 0) AS cpu, coalesce(sum(a.memory_mb), 0) AS memory,
           coalesce(sum(a.disk_mb), 0) AS disk, coalesce(sum(a.network_mbps), 0) AS network,
           count(*) FILTER (WHERE a.holds_slot AND EXISTS (
               SELECT FROM load_slots s
               WHERE s.agent_id = a.agent_id AND s.task_id = a.task_id)) AS slots
        INTO v_victims
        FROM allocations a WHERE a.agent_id = p_agent_id AND a.task_id = ANY (p_victims);
    IF v_victims.found < cardinality(p_victims) THEN
        o_status := 'full';  -- a victim is gone: the caller's view is stale
        RETURN;
    END IF;
    IF NOT v_found THEN
        o_status := 'missing';
        RETURN;
    END IF;
    SELECT 'existing', a.holds_slot, a.data::text INTO o_status, o_holds_slot, o_data
        FROM allocations a WHERE a.agent_id = p_agent_id AND a.task_id = p_task_id;
    IF FOUND THEN
        RETURN;
    END IF;
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
        (v_agent.limit_cpu_cores IS NULL OR v_agent.alloc_cpu_cores - v_victims.cpu
         + v_resv.o_cpu + p_cpu <= v_agent.limit_cpu_cores + 1e-9)
        AND (v_agent.limit_memory_mb IS NULL OR v_agent.alloc_memory_mb - v_victims.memory
             + v_resv.o_memory + p_memory <= v_agent.limit_memory_mb + 1e-9)
        AND (v_agent.limit_disk_mb IS NULL OR v_agent.alloc_disk_mb - v_victims.disk
             + v_resv.o_disk + p_disk <= v_agent.limit_disk_mb + 1e-9)
        AND (v_agent.limit_network_mbps IS NULL OR v_agent.alloc_network_mbps
             - v_victims.network + v_resv.o_network + p_network
             <= v_agent.limit_network_mbps + 1e-9)
    ) THEN
        o_status := 'full';
        RETURN;
    END IF;
    v_held := EXISTS (SELECT FROM load_slots s
                      WHERE s.agent_id = p_agent_id AND s.task_id = p_task_id);
    IF NOT v_held AND v_agent.load - v_victims.slots >= v_agent.max_tasks THEN
        o_status := 'full';
        RETURN;
    END IF;

    -- It fits: apply.
    IF v_victims.found > 0 THEN
        DELETE FROM load_slots s USING allocations a
            WHERE a.agent_id = p_agent_id AND a.task_id = ANY (p_victims) AND a.holds_slot
              AND s.agent_id = a.agent_id AND s.task_id = a.task_id;
        DELETE FROM allocations WHERE agent_id = p_agent_id AND task_id = ANY (p_victims);
    END IF;
    IF v_redeeming THEN
        DELETE FROM reservations WHERE reservation_id = v_redeem.reservation_id;
        IF v_redeem.counted THEN
            UPDATE agents SET resv_cpu_cores = resv_cpu_cores - v_redeem.cpu,
                              resv_memory_mb = resv_memory_mb - v_redeem.memory,
                              resv_disk_mb = resv_disk_mb - v_redeem.disk,
                              resv_network_mbps = resv_network_mbps - v_redeem.network
                WHERE agent_id = p_agent_id;
        END IF;
    END IF;
    IF NOT v_held THEN
        INSERT INTO load_slots (agent_id, task_id, acquired_at)
            VALUES (p_agent_id, p_task_id, p_now);
    END IF;
    o_holds_slot := NOT v_held;
    INSERT INTO allocations (agent_id, task_id, created_at, cpu_cores, memory_mb, disk_mb,
                             network_mbps, holds_slot, data)
        VALUES (p_agent_id, p_task_id, p_created_at, p_cpu, p_memory, p_disk, p_network,
                o_holds_slot,
                CASE WHEN o_holds_slot = coalesce((p_data ->> 'holds_slot')::boolean, false)
                     THEN p_data
                     ELSE p_data || jsonb_build_object('holds_slot', o_holds_slot) END);
    UPDATE agents SET load = load - v_victims.slots + (CASE WHEN v_held THEN 0 ELSE 1 END),
                      alloc_cpu_cores = alloc_cpu_cores - v_victims.cpu + p_cpu,
                      alloc_memory_mb = alloc_memory_mb - v_victims.memory + p_memory,
                      alloc_disk_mb = alloc_disk_mb - v_victims.disk + p_disk,
                      alloc_network_mbps = alloc_network_mbps - v_victims.network + p_network
        WHERE agent_id = p_agent_id;
    IF 'Infinity' IN (v_victims.cpu, v_victims.memory, v_victims.disk, v_victims.network)
    THEN
        v_found := true;
    ELSIF v_redeeming THEN
        v_found := 'Infinity' IN (v_redeem.cpu, v_redeem.memory, v_redeem.disk,
                                  v_redeem.network);
    ELSE
        v_found := false;
    END IF;
    IF v_found THEN  -- an infinite amount was removed
        PERFORM devcrew_recount(p_agent_id);
    END IF;
    o_status := 'allocated';
END
$$;

-- Remove an allocation (freeing the slot it holds); its data, or NULL.
CREATE FUNCTION devcrew_release_allocation(p_agent_id text, p_task_id text)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_gone record;
    v_freed integer := 0;
BEGIN
    PERFORM FROM agents WHERE agent_id = p_agent_id FOR UPDATE;
    DELETE FROM allocations WHERE agent_id = p_agent_id AND task_id = p_task_id
        RETURNING data::text AS data, holds_slot, cpu_cores, memory_mb, disk_mb, network_mbps
        INTO v_gone;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF v_gone.holds_slot THEN
        DELETE FROM load_slots WHERE agent_id = p_agent_id AND task_id = p_task_id;
        IF FOUND THEN
            v_freed := 1;
        END IF;
    END IF;
    UPDATE agents SET load = load - v_freed,
                      alloc_cpu_cores = alloc_cpu_cores - v_gone.cpu_cores,
                      alloc_memory_mb = alloc_memory_mb - v_gone.memory_mb,
                      alloc_disk_mb = alloc_disk_mb - v_gone.disk_mb,
                      alloc_network_mbps = alloc_network_mbps - v_gone.network_mbps
        WHERE agent_id = p_agent_id;
    IF 'Infinity' IN (v_gone.cpu_cores, v_gone.memory_mb, v_gone.disk_mb,
                      v_gone.network_mbps) THEN
        PERFORM devcrew_recount(p_agent_id);
    END IF;
    RETURN v_gone.data;
END
$$;


-- Reservations -----------------------------------------------------------------------------

-- Hold capacity for a future task if it fits: 'missing' (unknown agent), 'exists' (the
-- reservation_id is taken), 'full' or 'reserved'.
CREATE FUNCTION devcrew_reserve(
    p_reservation_id text, p_agent_id text, p_now double precision,
    p_expires_at double precision, p_created_at double precision,
    p_cpu numeric, p_memory numeric, p_disk numeric, p_network numeric, p_data jsonb)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    v_agent record;
    v_resv record;
BEGIN
    SELECT limit_cpu_cores, limit_memory_mb, limit_disk_mb, limit_network_mbps,
           alloc_cpu_cores, alloc_memory_mb, alloc_disk_mb, alloc_network_mbps
        INTO v_agent FROM agents WHERE agent_id = p_agent_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'missing';
    END IF;
    IF EXISTS (SELECT FROM reservations WHERE reservation_id = p_reservation_id) THEN
        RETURN 'exists';
    END IF;
    SELECT * INTO v_resv FROM devcrew_reserved(p_agent_id, p_now);
    IF NOT (
        (v_agent.limit_cpu_cores IS NULL OR v_agent.alloc_cpu_cores + v_resv.o_cpu + p_cpu
         <= v_agent.limit_cpu_cores + 1e-9)
        AND (v_agent.limit_memory_mb IS NULL OR v_agent.alloc_memory_mb + v_resv.o_memory
             + p_memory <= v_agent.limit_memory_mb + 1e-9)
        AND (v_agent.limit_disk_mb IS NULL OR v_agent.alloc_disk_mb + v_resv.o_disk + p_disk
             <= v_agent.limit_disk_mb + 1e-9)
        AND (v_agent.limit_network_mbps IS NULL OR v_agent.alloc_network_mbps
             + v_resv.o_network + p_network <= v_agent.limit_network_mbps + 1e-9)
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
    UPDATE agents SET resv_cpu_cores = resv_cpu_cores + p_cpu,
                      resv_memory_mb = resv_memory_mb + p_memory,
                      resv_disk_mb = resv_disk_mb + p_disk,
                      resv_network_mbps = resv_network_mbps + p_network,
                      resv_next_expiry = least(resv_next_expiry, p_expires_at)
        WHERE agent_id = p_agent_id;
    RETURN 'reserved';
END
$$;

-- Remove a reservation; true if it existed.
CREATE FUNCTION devcrew_cancel_reservation(p_reservation_id text)
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
    PERFORM FROM agents WHERE agent_id = v_agent_id FOR UPDATE;
    DELETE FROM reservations WHERE reservation_id = p_reservation_id
        RETURNING counted, cpu_cores, memory_mb, disk_mb, network_mbps INTO v_gone;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF v_gone.counted THEN
        UPDATE agents SET resv_cpu_cores = resv_cpu_cores - v_gone.cpu_cores,
                          resv_memory_mb = resv_memory_mb - v_gone.memory_mb,
                          resv_disk_mb = resv_disk_mb - v_gone.disk_mb,
                          resv_network_mbps = resv_network_mbps - v_gone.network_mbps
            WHERE agent_id = v_agent_id;
        IF 'Infinity' IN (v_gone.cpu_cores, v_gone.memory_mb, v_gone.disk_mb,
                          v_gone.network_mbps) THEN
            PERFORM devcrew_recount(v_agent_id);
        END IF;
    END IF;
    RETURN true;
END
$$;

-- Remove every reservation that expires at or before p_now; their data. The agents
-- concerned are locked first (several in agent_id order, see devcrew_lock_agents). The
-- counters are changed by a statement of their own, after the delete: one whose
-- snapshot also sees an agent row that a put_agent inserted meanwhile (its trigger
-- counted these reservations, waiting for this delete to let go of them).
CREATE FUNCTION devcrew_expire_reservations(p_now double precision)
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
        UPDATE agents a SET resv_cpu_cores = a.resv_cpu_cores - f.cpu,
                            resv_memory_mb = a.resv_memory_mb - f.memory,
                            resv_disk_mb = a.resv_disk_mb - f.disk,
                            resv_network_mbps = a.resv_network_mbps - f.network
            FROM (SELECT g.agent_id, sum(g.cpu) AS cpu, sum(g.memory) AS memory,
                         sum(g.disk) AS disk, sum(g.network) AS network
                  FROM unnest(v_gone.agent_ids, v_gone.cpu, v_gone.memory, v_gone.disk,
                              v_gone.network) AS g (agent_id, cpu, memory, disk, network)
                  GROUP BY g.agent_id) f
            WHERE a.agent_id = f.agent_id;
        -- Infinity minus an infinite amount removed is NaN (numeric NaN equals NaN).
        PERFORM devcrew_recount(agent_id) FROM agents
            WHERE agent_id = ANY (v_gone.agent_ids)
              AND 'NaN' IN (resv_cpu_cores, resv_memory_mb, resv_disk_mb, resv_network_mbps);
    END IF;
    RETURN QUERY SELECT unnest(v_gone.data);
END
$$;
