-- policyCheck v2 also lists the enforced, active policies that matched but did
-- not decide compactly ("id@version", body field outranked). Explain expands
-- them back into the full evaluation path. Older rows: an empty list.
ALTER TABLE policy_checks ADD COLUMN IF NOT EXISTS outranked jsonb NOT NULL DEFAULT '[]';
