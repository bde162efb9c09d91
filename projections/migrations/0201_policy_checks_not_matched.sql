-- policyCheck v2 lists the enforced, active policies that did not match
-- compactly ("id@version", body field notMatched) instead of as full entries
-- of evaluations. Explain expands them back into the full evaluation path.
-- Rows of v1 checks keep every entry in evaluations and an empty list here.
ALTER TABLE policy_checks ADD COLUMN IF NOT EXISTS not_matched jsonb NOT NULL DEFAULT '[]';
