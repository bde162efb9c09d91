-- The audit projector's role may only INSERT audit rows: it never reads them
-- (its resume position is projection_checkpoints), so a compromised projector
-- cannot even enumerate the log it appends to, let alone change it.
REVOKE SELECT ON audit_events FROM kernel_projector;
GRANT INSERT ON audit_events TO kernel_projector;
