-- Version 3: each agent keeps its load as a counter, changed in the same transaction as
-- its load slots, so taking a slot no longer counts every slot the agent holds.
ALTER TABLE agents ADD COLUMN load INTEGER NOT NULL DEFAULT 0;
UPDATE agents SET load = (SELECT COUNT(*) FROM load_slots s WHERE s.agent_id = agents.agent_id);
