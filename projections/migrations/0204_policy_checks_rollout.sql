-- policyCheck v3 records, per canary version in scope, its sampling value and
-- what the active set would have decided (body field rollout). Explain shows it;
-- the canary gates read it from the log. Older rows: an empty list.
ALTER TABLE policy_checks ADD COLUMN IF NOT EXISTS rollout jsonb NOT NULL DEFAULT '[]';
