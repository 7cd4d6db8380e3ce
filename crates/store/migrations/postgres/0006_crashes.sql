-- A node stays up (issue 12): an execution whose node died under it is counted, so one that
-- crashes every node that runs it (a poison execution) is failed instead of resumed forever.
-- `crashes`: lost leases in a row without progress; `crash_mark`: journal entries at the
-- last one (progress since resets the count).
ALTER TABLE executions ADD COLUMN crashes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE executions ADD COLUMN crash_mark BIGINT NOT NULL DEFAULT 0;
