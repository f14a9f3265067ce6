-- Version 8: an agent's load slots, its allocations and their totals live in one table,
-- `holdings`, so that allocating and releasing write a single B-tree page (the agent's
-- rows are neighbours under the key (agent_id, task_id)) in a single statement:
--
-- * a task row (task_id <> '') is what a task holds on the agent: its load slot
--   (`slot_at` is when it took it; NULL: it holds none) and/or its allocation
--   (`created_at` and the allocation's fields; `created_at` NULL: none, amounts 0).
--   A row exists while the task holds either.
-- * the agent's totals row (task_id = '', which no task ID can be) keeps its load (slots
--   held), the number and the sums of its allocations (`used_*`), the number of its
--   reservations (live or expired: rows in `reservations`), and its limits (copied
--   from the agent record whenever it is written; +Inf is unlimited). It exists exactly
--   while the agent is registered. Allocations outlive their agent (as before): a
--   re-registered agent's totals row is computed from the rows it finds.
--
-- The totals are maintained by the triggers below, in the statement that changes a task
-- row, so no code path can forget them; a test checks them against the sums. When an
-- agent's last allocation goes, its sums are reset to exactly 0; in between, float
-- rounding may move them by a few ulps, which only the fast path's stricter check reads
-- (the exact path sums the rows). 009 replaces the delete and update triggers (infinite
-- amounts). Replaces `allocations`, `load_slots` and `agents.load`.
CREATE TABLE holdings (
    agent_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    slot_at REAL,
    created_at REAL,
    cpu_cores REAL NOT NULL DEFAULT 0,
    memory_mb REAL NOT NULL DEFAULT 0,
    disk_mb REAL NOT NULL DEFAULT 0,
    network_mbps REAL NOT NULL DEFAULT 0,
    priority INTEGER,
    preemptable INTEGER,
    reservation_id TEXT,
    holds_slot INTEGER,
    load INTEGER,
    allocations INTEGER,
    used_cpu REAL,
    used_memory REAL,
    used_disk REAL,
    used_network REAL,
    reservations INTEGER,
    max_tasks INTEGER,
    cpu_limit REAL,
    memory_limit REAL,
    disk_limit REAL,
    network_limit REAL,
    PRIMARY KEY (agent_id, task_id)
) WITHOUT ROWID;

-- Allocations, each with the slot of its task when the task holds one.
INSERT INTO holdings (agent_id, task_id, slot_at, created_at, cpu_cores, memory_mb, disk_mb,
                      network_mbps, priority, preemptable, reservation_id, holds_slot)
SELECT a.agent_id, a.task_id, s.acquired_at, a.created_at, a.cpu_cores, a.memory_mb,
       a.disk_mb, a.network_mbps,
       COALESCE(json_extract(a.data, '$.priority'), 2),
       COALESCE(json_extract(a.data, '$.preemptable'), 1),
       json_extract(a.data, '$.reservation_id'),
       COALESCE(json_extract(a.data, '$.holds_slot'), 0)
FROM allocations a
LEFT JOIN load_slots s ON s.agent_id = a.agent_id AND s.task_id = a.task_id;

-- Slots of tasks without an allocation.
INSERT INTO holdings (agent_id, task_id, slot_at)
SELECT s.agent_id, s.task_id, s.acquired_at FROM load_slots s
WHERE NOT EXISTS (SELECT 1 FROM allocations a
                  WHERE a.agent_id = s.agent_id AND a.task_id = s.task_id);

-- A totals row per registered agent. Its limits as base.ceiling reads them: no
-- resource_limits is unlimited; a missing disk or network limit is unlimited (9e999 is
-- +Inf in SQLite); cpu and memory default as ResourceLimits does.
INSERT INTO holdings (agent_id, task_id, load, allocations, used_cpu, used_memory, used_disk,
                      used_network, reservations, max_tasks, cpu_limit, memory_limit, disk_limit,
                      network_limit)
SELECT g.agent_id, '',
       (SELECT COUNT(h.slot_at) FROM holdings h WHERE h.agent_id = g.agent_id),
       (SELECT COUNT(h.created_at) FROM holdings h WHERE h.agent_id = g.agent_id),
       (SELECT TOTAL(h.cpu_cores) FROM holdings h WHERE h.agent_id = g.agent_id),
       (SELECT TOTAL(h.memory_mb) FROM holdings h WHERE h.agent_id = g.agent_id),
       (SELECT TOTAL(h.disk_mb) FROM holdings h WHERE h.agent_id = g.agent_id),
       (SELECT TOTAL(h.network_mbps) FROM holdings h WHERE h.agent_id = g.agent_id),
       (SELECT COUNT(*) FROM reservations r WHERE r.agent_id = g.agent_id),
       g.max_concurrent_tasks,
       CASE WHEN json_type(g.data, '$.resource_limits') = 'object'
            THEN COALESCE(json_extract(g.data, '$.resource_limits.cpu_cores'), 2.0)
            ELSE 9e999 END,
       CASE WHEN json_type(g.data, '$.resource_limits') = 'object'
            THEN COALESCE(json_extract(g.data, '$.resource_limits.memory_mb'), 2048.0)
            ELSE 9e999 END,
       CASE WHEN json_type(g.data, '$.resource_limits') = 'object'
            THEN COALESCE(json_extract(g.data, '$.resource_limits.disk_mb'), 9e999)
            ELSE 9e999 END,
       CASE WHEN json_type(g.data, '$.resource_limits') = 'object'
            THEN COALESCE(json_extract(g.data, '$.resource_limits.network_mbps'), 9e999)
            ELSE 9e999 END
FROM agents g;

DROP TABLE allocations;
DROP TABLE load_slots;
ALTER TABLE agents DROP COLUMN load;

-- The totals follow every change of a task row (a task row never changes agent_id).
--
-- The insert trigger is also the capacity check of SQLiteStore.allocate's one-statement
-- common case, which inserts the task's row with its new slot and its allocation: the
-- statement fails (RAISE(ABORT) undoes it) unless the agent is registered and, with it,
-- its load and sums are within its limits, and the agent has no reservation at all. The check is conservative:
-- no float tolerance, and expired reservations count; whatever it refuses is decided
-- again, exactly, by the store's general path, which never inserts a row holding an
-- allocation (it inserts the slot, then updates the row), so the check applies to the
-- common case only.
CREATE TRIGGER holdings_insert AFTER INSERT ON holdings WHEN NEW.task_id <> '' BEGIN
    UPDATE holdings SET
        load = load + (NEW.slot_at IS NOT NULL),
        allocations = allocations + (NEW.created_at IS NOT NULL),
        used_cpu = used_cpu + NEW.cpu_cores,
        used_memory = used_memory + NEW.memory_mb,
        used_disk = used_disk + NEW.disk_mb,
        used_network = used_network + NEW.network_mbps
    WHERE agent_id = NEW.agent_id AND task_id = '' AND (NEW.created_at IS NULL OR (
        load + (NEW.slot_at IS NOT NULL) <= max_tasks
        AND used_cpu + NEW.cpu_cores <= cpu_limit
        AND used_memory + NEW.memory_mb <= memory_limit
        AND used_disk + NEW.disk_mb <= disk_limit
        AND used_network + NEW.network_mbps <= network_limit
        AND reservations = 0));
    -- changes() is the count of the trigger's own UPDATE above: 0 when it did not fit
    -- (or the agent is not registered).
    SELECT RAISE(ABORT, 'devcrew: allocation left to the general path')
    WHERE NEW.created_at IS NOT NULL AND changes() = 0;
END;

CREATE TRIGGER holdings_delete AFTER DELETE ON holdings WHEN OLD.task_id <> '' BEGIN
    UPDATE holdings SET
        load = load - (OLD.slot_at IS NOT NULL),
        allocations = allocations - (OLD.created_at IS NOT NULL),
        used_cpu = CASE WHEN allocations = (OLD.created_at IS NOT NULL) THEN 0.0
                        ELSE used_cpu - OLD.cpu_cores END,
        used_memory = CASE WHEN allocations = (OLD.created_at IS NOT NULL) THEN 0.0
                           ELSE used_memory - OLD.memory_mb END,
        used_disk = CASE WHEN allocations = (OLD.created_at IS NOT NULL) THEN 0.0
                         ELSE used_disk - OLD.disk_mb END,
        used_network = CASE WHEN allocations = (OLD.created_at IS NOT NULL) THEN 0.0
                            ELSE used_network - OLD.network_mbps END
    WHERE agent_id = OLD.agent_id AND task_id = '';
END;

-- Only changes of a task row's own columns: the totals row's columns are not listed, so
-- the triggers' updates of it never fire this one.
CREATE TRIGGER holdings_update AFTER UPDATE OF task_id, slot_at, created_at, cpu_cores,
    memory_mb, disk_mb, network_mbps ON holdings WHEN NEW.task_id <> '' BEGIN
    UPDATE holdings SET
        load = load + (NEW.slot_at IS NOT NULL) - (OLD.slot_at IS NOT NULL),
        allocations = allocations + (NEW.created_at IS NOT NULL) - (OLD.created_at IS NOT NULL),
        used_cpu = CASE WHEN allocations + (NEW.created_at IS NOT NULL)
                             - (OLD.created_at IS NOT NULL) = 0 THEN 0.0
                        ELSE used_cpu + (NEW.cpu_cores - OLD.cpu_cores) END,
        used_memory = CASE WHEN allocations + (NEW.created_at IS NOT NULL)
                                - (OLD.created_at IS NOT NULL) = 0 THEN 0.0
                           ELSE used_memory + (NEW.memory_mb - OLD.memory_mb) END,
        used_disk = CASE WHEN allocations + (NEW.created_at IS NOT NULL)
                              - (OLD.created_at IS NOT NULL) = 0 THEN 0.0
                         ELSE used_disk + (NEW.disk_mb - OLD.disk_mb) END,
        used_network = CASE WHEN allocations + (NEW.created_at IS NOT NULL)
                                 - (OLD.created_at IS NOT NULL) = 0 THEN 0.0
                            ELSE used_network + (NEW.network_mbps - OLD.network_mbps) END
    WHERE agent_id = NEW.agent_id AND task_id = '';
END;

-- An agent's reservations are counted in its totals row, so the insert trigger's check
-- reads no other table (a reservation row never changes agent_id, nor is it updated).
CREATE TRIGGER reservations_insert AFTER INSERT ON reservations BEGIN
    UPDATE holdings SET reservations = reservations + 1
    WHERE agent_id = NEW.agent_id AND task_id = '';
END;

CREATE TRIGGER reservations_delete AFTER DELETE ON reservations BEGIN
    UPDATE holdings SET reservations = reservations - 1
    WHERE agent_id = OLD.agent_id AND task_id = '';
END;
