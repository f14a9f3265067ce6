-- devcrew PostgreSQL schema, version 1.
--
-- Applied by devcrew_postgres.migrations in one transaction under an advisory lock, in
-- the first schema of the connection's search_path. Records are stored whole as JSONB in
-- `data`; the other columns exist to be indexed, summed or filtered in SQL. Identifier
-- columns use the "C" collation so ORDER BY is byte order, as in the other backends,
-- whatever the database's locale.
--
-- The functions at the end are the invariants: each runs as one statement (one round
-- trip, one transaction) and locks the agent row before it reads or changes anything
-- that belongs to the agent, so concurrent callers queue on that row lock.
--
-- Every transaction takes its locks in one order, so none can wait for another that
-- waits for it: the advisory lock 'batch', then 'log', then agent rows (several in
-- agent_id order), then the rows that belong to them.

CREATE TABLE agents (
    agent_id text COLLATE "C" PRIMARY KEY,
    agent_type text COLLATE "C" NOT NULL,
    capabilities text[] NOT NULL,
    max_concurrent_tasks integer NOT NULL,
    -- The number of load_slots rows of the agent, changed in the same transaction as
    -- they are, so taking a slot never counts the agent's slots.
    load integer NOT NULL DEFAULT 0 CHECK (load >= 0),
    -- The agent's ResourceLimits; NULL means unlimited.
    limit_cpu_cores double precision,
    limit_memory_mb double precision,
    limit_disk_mb double precision,
    limit_network_mbps double precision,
    data jsonb NOT NULL
);
CREATE INDEX agents_by_type ON agents (agent_type, agent_id);
-- find_agents asks `capabilities @> ARRAY[...]`, which this index answers.
CREATE INDEX agents_by_capability ON agents USING gin (capabilities);

CREATE TABLE load_slots (
    agent_id text COLLATE "C" NOT NULL,
    task_id text COLLATE "C" NOT NULL,
    acquired_at double precision NOT NULL,
    PRIMARY KEY (agent_id, task_id)
);

-- Allocations and reservations outlive a deleted agent (as in every backend): they are
-- released by their owners, so there is no foreign key to agents.
-- Delegations made through DelegationManager: an active one holds a load slot (taken in
-- the same transaction), completing it frees the slot and keeps the record.
CREATE TABLE delegations (
    task_id text COLLATE "C" PRIMARY KEY,
    agent_id text COLLATE "C" NOT NULL,
    status text COLLATE "C" NOT NULL,
    delegated_at double precision NOT NULL,
    data jsonb NOT NULL
);
CREATE INDEX delegations_by_agent ON delegations (agent_id, status);
CREATE INDEX delegations_by_time ON delegations (delegated_at, task_id);

CREATE TABLE allocations (
    agent_id text COLLATE "C" NOT NULL,
    task_id text COLLATE "C" NOT NULL,
    created_at double precision NOT NULL,
    cpu_cores double precision NOT NULL,
    memory_mb double precision NOT NULL,
    disk_mb double precision NOT NULL,
    network_mbps double precision NOT NULL,
    data jsonb NOT NULL,
    PRIMARY KEY (agent_id, task_id)
);
CREATE INDEX allocations_by_creation ON allocations (created_at, agent_id, task_id);

CREATE TABLE reservations (
    reservation_id text COLLATE "C" PRIMARY KEY,
    agent_id text COLLATE "C" NOT NULL,
    expires_at double precision NOT NULL,
    created_at double precision NOT NULL,
    cpu_cores double precision NOT NULL,
    memory_mb double precision NOT NULL,
    disk_mb double precision NOT NULL,
    network_mbps double precision NOT NULL,
    data jsonb NOT NULL
);
CREATE INDEX reservations_by_agent ON reservations (agent_id, expires_at);
CREATE INDEX reservations_by_expiry ON reservations (expires_at);

CREATE TABLE workflows (
    workflow_id text COLLATE "C" PRIMARY KEY,
    data jsonb NOT NULL
);

-- Immutable documents addressed by their content digest (a run's workflow definition).
-- `text`, not jsonb: the document comes back byte for byte as it was stored, so its
-- digest still matches.
CREATE TABLE snapshots (
    snapshot_id text COLLATE "C" PRIMARY KEY,
    data text NOT NULL
);

CREATE TABLE runs (
    run_id text COLLATE "C" PRIMARY KEY,
    workflow_id text COLLATE "C" NOT NULL,
    status text COLLATE "C" NOT NULL,
    created_at double precision NOT NULL,
    -- Its own column so executing processes can poll it without reading `data`.
    cancel_requested boolean NOT NULL DEFAULT false,
    data jsonb NOT NULL
);
CREATE INDEX runs_by_workflow ON runs (workflow_id, created_at, run_id);
CREATE INDEX runs_by_status ON runs (status, created_at, run_id);
CREATE INDEX runs_by_creation ON runs (created_at, run_id);

CREATE TABLE task_states (
    run_id text COLLATE "C" NOT NULL,
    task_id text COLLATE "C" NOT NULL,
    data jsonb NOT NULL,
    PRIMARY KEY (run_id, task_id)
);

CREATE TABLE handoffs (
    handoff_id text COLLATE "C" PRIMARY KEY,
    workflow_id text COLLATE "C" NOT NULL,
    created_at double precision NOT NULL,
    data jsonb NOT NULL,
    context jsonb
);
CREATE INDEX handoffs_by_workflow ON handoffs (workflow_id, created_at, handoff_id);

CREATE TABLE audit (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind text COLLATE "C" NOT NULL,
    workflow_id text COLLATE "C",
    created_at double precision NOT NULL,
    data jsonb NOT NULL
);
CREATE INDEX audit_by_workflow ON audit (workflow_id, seq);
CREATE INDEX audit_by_kind ON audit (kind, seq);

-- The audit trail is append-only, whatever code touches the database: UPDATE, DELETE
-- and TRUNCATE are refused by triggers (only the table's owner could drop them).
CREATE FUNCTION devcrew_audit_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit trail is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_no_update_or_delete BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION devcrew_audit_is_append_only();
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION devcrew_audit_is_append_only();

CREATE TABLE events (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind text COLLATE "C" NOT NULL,
    created_at double precision NOT NULL,
    data jsonb NOT NULL
);
CREATE INDEX events_by_kind ON events (kind, seq);


-- Locks ----------------------------------------------------------------------------------

-- Take the advisory lock `p_name` until the end of the transaction. Keyed by the schema
-- too, so devcrew installations in two schemas of one database never wait for each
-- other. 'batch' is held by every Store.batch() and by calls that lock several agents.
-- 'log' by every batch and every transaction that appends audit records or events, so
-- their seq numbers become visible in the order they were drawn (a reader polling with
-- after=seq never misses a row that commits late with a smaller seq).
CREATE FUNCTION devcrew_lock(p_name text) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_advisory_xact_lock(1684371043, hashtext(p_name || '.' || current_schema()))
$$;

-- Lock the agent rows of `p_agent_ids`. One agent (the common case) is simply locked;
-- several are locked in agent_id order and under the 'batch' lock: a batch locks agents
-- in whatever order its caller works, so without that lock a batch and this call could
-- each hold an agent the other waits for.
CREATE FUNCTION devcrew_lock_agents(p_agent_ids text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_agent_ids[1] = ALL (p_agent_ids) THEN
        PERFORM 1 FROM agents WHERE agent_id = p_agent_ids[1] FOR UPDATE;
    ELSE
        PERFORM devcrew_lock('batch');
        PERFORM 1 FROM agents WHERE agent_id = ANY (p_agent_ids) ORDER BY agent_id FOR UPDATE;
    END IF;
END
$$;


-- Load slots ---------------------------------------------------------------------------

-- Take a slot for each task, in order, as capacity allows. One row per task:
-- (acquired, already_held, load afterwards, max_concurrent_tasks). An unknown agent gives
-- one row of NULLs instead of an error, so a caller inside a larger transaction can
-- carry on (an error would abort the whole transaction).
CREATE FUNCTION devcrew_acquire_slots(p_agent_id text, p_task_ids text[], p_now double precision)
RETURNS TABLE (o_acquired boolean, o_already_held boolean, o_load integer, o_limit integer)
LANGUAGE plpgsql AS $$
DECLARE
    v_limit integer;
    v_load integer;
    v_added integer := 0;
    v_task text;
BEGIN
    SELECT a.max_concurrent_tasks, a.load INTO v_limit, v_load
        FROM agents a WHERE a.agent_id = p_agent_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT NULL::boolean, NULL::boolean, NULL::integer, NULL::integer;
        RETURN;
    END IF;
    FOREACH v_task IN ARRAY p_task_ids LOOP
        o_limit := v_limit;
        IF v_load < v_limit THEN
            -- Ignored exactly when the task holds its slot already.
            INSERT INTO load_slots (agent_id, task_id, acquired_at)
                VALUES (p_agent_id, v_task, p_now) ON CONFLICT DO NOTHING;
            o_already_held := NOT FOUND;
            IF FOUND THEN
                v_load := v_load + 1;
                v_added := v_added + 1;
            END IF;
            o_acquired := true;
        ELSE
            o_already_held := EXISTS (
                SELECT 1 FROM load_slots s WHERE s.agent_id = p_agent_id AND s.task_id = v_task);
            o_acquired := o_already_held;
        END IF;
        o_load := v_load;
        RETURN NEXT;
    END LOOP;
    IF v_added > 0 THEN
        UPDATE agents SET load = load + v_added WHERE agent_id = p_agent_id;
    END IF;
END
$$;

-- Free the slot of each (agent, task) pair, in order; true where it was held. The agents
-- are locked first, so a slot is freed exactly once however many callers race.
CREATE FUNCTION devcrew_release_slots(p_agent_ids text[], p_task_ids text[])
RETURNS boolean[]
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer := coalesce(array_length(p_agent_ids, 1), 0);
    v_freed boolean[] := array_fill(false, ARRAY[v_count]);
BEGIN
    PERFORM devcrew_lock_agents(p_agent_ids);
    FOR i IN 1 .. v_count LOOP
        DELETE FROM load_slots WHERE agent_id = p_agent_ids[i] AND task_id = p_task_ids[i];
        IF FOUND THEN
            UPDATE agents SET load = load - 1 WHERE agent_id = p_agent_ids[i];
            v_freed[i] := true;
        END IF;
    END LOOP;
    RETURN v_freed;
END
$$;

-- Hand the slot of each (agent, from_task) on to to_task, in order, without the load
-- changing (if to_task holds a slot there already, from_task's is freed instead); true
-- where from_task held a slot.
CREATE FUNCTION devcrew_transfer_slots(p_agent_ids text[], p_from_tasks text[],
                                       p_to_tasks text[])
RETURNS boolean[]
LANGUAGE plpgsql AS $$
DECLARE
    v_count integer := coalesce(array_length(p_agent_ids, 1), 0);
    v_moved boolean[] := array_fill(false, ARRAY[v_count]);
    v_agent text;
    v_from text;
    v_to text;
BEGIN
    PERFORM devcrew_lock_agents(p_agent_ids);
    FOR i IN 1 .. v_count LOOP
        v_agent := p_agent_ids[i];
        v_from := p_from_tasks[i];
        v_to := p_to_tasks[i];
        IF v_from = v_to THEN
            v_moved[i] := EXISTS (
                SELECT 1 FROM load_slots WHERE agent_id = v_agent AND task_id = v_from);
        ELSIF EXISTS (SELECT 1 FROM load_slots WHERE agent_id = v_agent AND task_id = v_to) THEN
            DELETE FROM load_slots WHERE agent_id = v_agent AND task_id = v_from;
            IF FOUND THEN
                UPDATE agents SET load = load - 1 WHERE agent_id = v_agent;
                v_moved[i] := true;
            END IF;
        ELSE
            UPDATE load_slots SET task_id = v_to WHERE agent_id = v_agent AND task_id = v_from;
            v_moved[i] := FOUND;
        END IF;
    END LOOP;
    RETURN v_moved;
END
$$;

-- Delegations -----------------------------------------------------------------------------

-- Take a slot for the task and, when it was taken, store the delegation (replacing an
-- earlier one of the task) and the audit record (if p_audit_kind is given). Answers as
-- devcrew_acquire_slots does for one task, plus o_active_agent: the other agent the task
-- is actively delegated to, when that refused the call (then nothing changes).
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
    IF NOT o_acquired THEN  -- full, or (NULL) an unknown agent
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
            DELETE FROM load_slots WHERE agent_id = p_agent_id AND task_id = p_task_id;
            UPDATE agents SET load = load - 1 WHERE agent_id = p_agent_id;
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

-- Free the task's slot and mark its delegation completed (merging p_patch into its
-- data), appending the audit record if given. (data, completed_now): no row when the
-- task has no delegation to the agent; completed_now is false when it was completed
-- before (then nothing changes: the slot is freed exactly once).
CREATE FUNCTION devcrew_complete_delegation(
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
    PERFORM 1 FROM agents WHERE agent_id = p_agent_id FOR UPDATE;
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
    DELETE FROM load_slots WHERE agent_id = p_agent_id AND task_id = p_task_id;
    IF FOUND THEN
        UPDATE agents SET load = load - 1 WHERE agent_id = p_agent_id;
    END IF;
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


-- Remove an agent and its slots; (its data, the tasks that held slots), or no row.
CREATE FUNCTION devcrew_delete_agent(p_agent_id text)
RETURNS TABLE (o_data text, o_tasks text[])
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM agents WHERE agent_id = p_agent_id RETURNING data::text INTO o_data;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    WITH gone AS (DELETE FROM load_slots WHERE agent_id = p_agent_id RETURNING task_id, acquired_at)
        SELECT coalesce(array_agg(task_id ORDER BY acquired_at, task_id), '{}') INTO o_tasks
        FROM gone;
    RETURN NEXT;
END
$$;


-- Resources ------------------------------------------------------------------------------

-- Whether `p_agent_id` (its row locked by the caller) can take the request at `p_now`:
-- its allocations plus its unexpired reservations (except `p_skip_reservation`, one being
-- redeemed) plus the request stay within its limits on every dimension. A NULL limit is
-- unlimited; 1e-9 absorbs float rounding (0.1 + 0.2 cores fit a 0.3 limit), exactly as
-- devcrew_core.stores.base.fits. PL/pgSQL rather than SQL: its plans are cached.
CREATE FUNCTION devcrew_fits(
    p_agent_id text, p_now double precision, p_skip_reservation text,
    p_cpu double precision, p_memory double precision,
    p_disk double precision, p_network double precision)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    v_limit record;
    v_used record;
BEGIN
    SELECT limit_cpu_cores AS cpu, limit_memory_mb AS memory, limit_disk_mb AS disk,
           limit_network_mbps AS network
        INTO v_limit FROM agents WHERE agent_id = p_agent_id;
    SELECT coalesce(sum(cpu_cores), 0) AS cpu, coalesce(sum(memory_mb), 0) AS memory,
           coalesce(sum(disk_mb), 0) AS disk, coalesce(sum(network_mbps), 0) AS network
        INTO v_used
        FROM (
            SELECT cpu_cores, memory_mb, disk_mb, network_mbps
                FROM allocations WHERE agent_id = p_agent_id
            UNION ALL
            SELECT cpu_cores, memory_mb, disk_mb, network_mbps
                FROM reservations
                WHERE agent_id = p_agent_id AND expires_at > p_now
                  AND reservation_id IS DISTINCT FROM p_skip_reservation
        ) held;
    RETURN (v_limit.cpu IS NULL OR v_used.cpu + p_cpu <= v_limit.cpu + 1e-9)
       AND (v_limit.memory IS NULL OR v_used.memory + p_memory <= v_limit.memory + 1e-9)
       AND (v_limit.disk IS NULL OR v_used.disk + p_disk <= v_limit.disk + 1e-9)
       AND (v_limit.network IS NULL OR v_used.network + p_network <= v_limit.network + 1e-9);
END
$$;

-- Record an allocation if it fits. (status, data): 'missing' (unknown agent), 'existing'
-- (the task's allocation, unchanged), 'full' (does not fit) or 'allocated'. A live
-- reservation named by p_reservation_id on the same agent is redeemed in the same step.
CREATE FUNCTION devcrew_allocate(
    p_agent_id text, p_task_id text, p_reservation_id text, p_now double precision,
    p_cpu double precision, p_memory double precision,
    p_disk double precision, p_network double precision,
    p_created_at double precision, p_data jsonb)
RETURNS TABLE (o_status text, o_data text)
LANGUAGE plpgsql AS $$
DECLARE
    v_redeem text;
BEGIN
    PERFORM 1 FROM agents WHERE agent_id = p_agent_id FOR UPDATE;
    IF NOT FOUND THEN
        o_status := 'missing';
        RETURN NEXT;
        RETURN;
    END IF;
    SELECT data::text INTO o_data FROM allocations
        WHERE agent_id = p_agent_id AND task_id = p_task_id;
    IF FOUND THEN
        o_status := 'existing';
        RETURN NEXT;
        RETURN;
    END IF;
    IF p_reservation_id IS NOT NULL THEN
        SELECT reservation_id INTO v_redeem FROM reservations
            WHERE reservation_id = p_reservation_id AND agent_id = p_agent_id
              AND expires_at > p_now;
    END IF;
    IF NOT devcrew_fits(p_agent_id, p_now, v_redeem, p_cpu, p_memory, p_disk, p_network) THEN
        o_status := 'full';
        RETURN NEXT;
        RETURN;
    END IF;
    IF v_redeem IS NOT NULL THEN
        DELETE FROM reservations WHERE reservation_id = v_redeem;
    END IF;
    INSERT INTO allocations (agent_id, task_id, created_at, cpu_cores, memory_mb, disk_mb,
                             network_mbps, data)
        VALUES (p_agent_id, p_task_id, p_created_at, p_cpu, p_memory, p_disk, p_network, p_data);
    o_status := 'allocated';
    RETURN NEXT;
END
$$;

-- Hold capacity for a future task if it fits: 'missing' (unknown agent), 'exists' (the
-- reservation_id is taken), 'full' or 'reserved'.
CREATE FUNCTION devcrew_reserve(
    p_reservation_id text, p_agent_id text, p_now double precision,
    p_expires_at double precision, p_created_at double precision,
    p_cpu double precision, p_memory double precision,
    p_disk double precision, p_network double precision, p_data jsonb)
RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM agents WHERE agent_id = p_agent_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'missing';
    END IF;
    IF EXISTS (SELECT 1 FROM reservations WHERE reservation_id = p_reservation_id) THEN
        RETURN 'exists';
    END IF;
    IF NOT devcrew_fits(p_agent_id, p_now, NULL, p_cpu, p_memory, p_disk, p_network) THEN
        RETURN 'full';
    END IF;
    -- Two reservations racing for one new id on different agents: the loser is told
    -- 'exists', not failed with a unique violation.
    INSERT INTO reservations (reservation_id, agent_id, expires_at, created_at, cpu_cores,
                              memory_mb, disk_mb, network_mbps, data)
        VALUES (p_reservation_id, p_agent_id, p_expires_at, p_created_at, p_cpu, p_memory,
                p_disk, p_network, p_data)
        ON CONFLICT (reservation_id) DO NOTHING;
    RETURN CASE WHEN FOUND THEN 'reserved' ELSE 'exists' END;
END
$$;
