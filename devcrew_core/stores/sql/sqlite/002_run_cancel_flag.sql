-- Version 2: a run's cancel flag gets its own column, so executing processes can poll it
-- several times a second without parsing the run's data (which holds its workflow).
ALTER TABLE runs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
UPDATE runs SET cancel_requested = COALESCE(json_extract(data, '$.cancel_requested'), 0);
