-- Version 9: taking an infinite amount off an agent's running sums (inf - inf) would
-- leave NaN, which SQLite stores as NULL, and the agent's fast-path check would never
-- pass again. When the amount removed or changed is infinite, the sum is recounted from
-- the agent's rows instead (AFTER triggers: the rows are as the statement left them).
-- Otherwise as in 008_holdings.sql: a sum is reset to exactly 0 with the last allocation.
DROP TRIGGER holdings_delete;
DROP TRIGGER holdings_update;

CREATE TRIGGER holdings_delete AFTER DELETE ON holdings WHEN OLD.task_id <> '' BEGIN
    UPDATE holdings SET
        load = load - (OLD.slot_at IS NOT NULL),
        allocations = allocations - (OLD.created_at IS NOT NULL),
        used_cpu = CASE WHEN allocations = (OLD.created_at IS NOT NULL) THEN 0.0
            WHEN OLD.cpu_cores >= 9e999 THEN (SELECT TOTAL(h.cpu_cores) FROM holdings h
                WHERE h.agent_id = OLD.agent_id AND h.task_id <> '')
            ELSE used_cpu - OLD.cpu_cores END,
        used_memory = CASE WHEN allocations = (OLD.created_at IS NOT NULL) THEN 0.0
            WHEN OLD.memory_mb >= 9e999 THEN (SELECT TOTAL(h.memory_mb) FROM holdings h
                WHERE h.agent_id = OLD.agent_id AND h.task_id <> '')
            ELSE used_memory - OLD.memory_mb END,
        used_disk = CASE WHEN allocations = (OLD.created_at IS NOT NULL) THEN 0.0
            WHEN OLD.disk_mb >= 9e999 THEN (SELECT TOTAL(h.disk_mb) FROM holdings h
                WHERE h.agent_id = OLD.agent_id AND h.task_id <> '')
            ELSE used_disk - OLD.disk_mb END,
        used_network = CASE WHEN allocations = (OLD.created_at IS NOT NULL) THEN 0.0
            WHEN OLD.network_mbps >= 9e999 THEN (SELECT TOTAL(h.network_mbps) FROM holdings h
                WHERE h.agent_id = OLD.agent_id AND h.task_id <> '')
            ELSE used_network - OLD.network_mbps END
    WHERE agent_id = OLD.agent_id AND task_id = '';
END;

CREATE TRIGGER holdings_update AFTER UPDATE OF task_id, slot_at, created_at, cpu_cores,
    memory_mb, disk_mb, network_mbps ON holdings WHEN NEW.task_id <> '' BEGIN
    UPDATE holdings SET
        load = load + (NEW.slot_at IS NOT NULL) - (OLD.slot_at IS NOT NULL),
        allocations = allocations + (NEW.created_at IS NOT NULL) - (OLD.created_at IS NOT NULL),
        used_cpu = CASE WHEN allocations + (NEW.created_at IS NOT NULL)
                             - (OLD.created_at IS NOT NULL) = 0 THEN 0.0
            WHEN OLD.cpu_cores >= 9e999 THEN (SELECT TOTAL(h.cpu_cores) FROM holdings h
                WHERE h.agent_id = NEW.agent_id AND h.task_id <> '')
            ELSE used_cpu + (NEW.cpu_cores - OLD.cpu_cores) END,
        used_memory = CASE WHEN allocations + (NEW.created_at IS NOT NULL)
                                - (OLD.created_at IS NOT NULL) = 0 THEN 0.0
            WHEN OLD.memory_mb >= 9e999 THEN (SELECT TOTAL(h.memory_mb) FROM holdings h
                WHERE h.agent_id = NEW.agent_id AND h.task_id <> '')
            ELSE used_memory + (NEW.memory_mb - OLD.memory_mb) END,
        used_disk = CASE WHEN allocations + (NEW.created_at IS NOT NULL)
                              - (OLD.created_at IS NOT NULL) = 0 THEN 0.0
            WHEN OLD.disk_mb >= 9e999 THEN (SELECT TOTAL(h.disk_mb) FROM holdings h
                WHERE h.agent_id = NEW.agent_id AND h.task_id <> '')
            ELSE used_disk + (NEW.disk_mb - OLD.disk_mb) END,
        used_network = CASE WHEN allocations + (NEW.created_at IS NOT NULL)
                                 - (OLD.created_at IS NOT NULL) = 0 THEN 0.0
            WHEN OLD.network_mbps >= 9e999 THEN (SELECT TOTAL(h.network_mbps)
                FROM holdings h WHERE h.agent_id = NEW.agent_id AND h.task_id <> '')
            ELSE used_network + (NEW.network_mbps - OLD.network_mbps) END
    WHERE agent_id = NEW.agent_id AND task_id = '';
END;
