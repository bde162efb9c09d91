-- Least privilege (docs/decisions/0014): each process's role holds exactly the
-- statements it runs, and no one -- the owner included -- changes an audit row.
--
--   kernel_projector           the audit projector: COPY into audit_events; INSERT
--                              audit_checkpoints ... ON CONFLICT (chain, size) DO
--                              NOTHING (the conflict target needs SELECT on its
--                              columns, nothing else); its own checkpoint rows.
--   kernel_sentinel_projector  policy_registry (folds from it: SELECT, INSERT,
--                              ON CONFLICT DO UPDATE of the state columns),
--                              policy_history (SELECT, INSERT), policy_checks
--                              (a staging table LIKE it: SELECT; INSERT),
--                              policy_change_rejections (INSERT); its checkpoint rows.
--   kernel_api                 SELECT on the read models, the checkpoints (lag) and
--                              schema_migrations (readiness); nothing else.
--   kernel_auditor             SELECT on audit_events and audit_checkpoints.
--
-- The owner is whoever runs the migrations (the local stack's kernel_owner).
-- Roles are cluster-wide: another database's migration may be creating them at
-- this very moment (hence the exception handler). Creating one needs CREATEROLE;
-- a deployment whose migrations owner lacks it creates them first (NOLOGIN is
-- enough here: a login role is granted membership, or given LOGIN, by the deployment).
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['kernel_projector', 'kernel_sentinel_projector', 'kernel_api',
                             'kernel_auditor']
    LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;
            END;
        END IF;
    END LOOP;
END;
$$;

-- Start from nothing (0100, 0102 and 0200 granted more), then grant each part.
REVOKE ALL ON audit_events, audit_checkpoints, projection_checkpoints, policy_registry,
    policy_history, policy_change_rejections, policy_checks, schema_migrations
    FROM kernel_projector, kernel_sentinel_projector, kernel_api, kernel_auditor;

GRANT INSERT ON audit_events TO kernel_projector;
GRANT INSERT, SELECT (chain, size) ON audit_checkpoints TO kernel_projector;

GRANT SELECT, INSERT, UPDATE (state, canary_percent, definition, updated_at)
    ON policy_registry TO kernel_sentinel_projector;
GRANT SELECT, INSERT ON policy_history, policy_checks TO kernel_sentinel_projector;
GRANT INSERT ON policy_change_rejections TO kernel_sentinel_projector;

-- A projector reads and moves its own positions (projections/checkpoints.py):
-- compare-and-set UPDATE of next_offset, INSERT ... ON CONFLICT DO NOTHING.
GRANT SELECT (projection, topic, partition, next_offset),
    INSERT (projection, topic, partition, next_offset),
    UPDATE (next_offset, updated_at)
    ON projection_checkpoints TO kernel_projector, kernel_sentinel_projector;

GRANT SELECT ON audit_events, audit_checkpoints, policy_registry, policy_history,
    policy_change_rejections, policy_checks, projection_checkpoints, schema_migrations
    TO kernel_api;
GRANT SELECT ON audit_events, audit_checkpoints TO kernel_auditor;

-- ... and only its own rows of projection_checkpoints: a projector cannot move
-- (or see) another projection's position. The owner is not subject to these.
ALTER TABLE projection_checkpoints ENABLE ROW LEVEL SECURITY;
CREATE POLICY audit_projector_rows ON projection_checkpoints TO kernel_projector
    USING (projection = 'audit') WITH CHECK (projection = 'audit');
CREATE POLICY sentinel_projector_rows ON projection_checkpoints TO kernel_sentinel_projector
    USING (projection IN ('policy_registry', 'policy_checks'))
    WITH CHECK (projection IN ('policy_registry', 'policy_checks'));
CREATE POLICY readers ON projection_checkpoints FOR SELECT TO kernel_api USING (true);

-- Append-only, even for the owner: the decision log's tables, like the audit
-- tables (0100), refuse UPDATE, DELETE and TRUNCATE. (policy_registry is the
-- one mutable read model: a policy's current state.)
CREATE TRIGGER policy_history_append_only
    BEFORE UPDATE OR DELETE ON policy_history
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER policy_history_no_truncate
    BEFORE TRUNCATE ON policy_history
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER policy_checks_append_only
    BEFORE UPDATE OR DELETE ON policy_checks
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER policy_checks_no_truncate
    BEFORE TRUNCATE ON policy_checks
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER policy_change_rejections_append_only
    BEFORE UPDATE OR DELETE ON policy_change_rejections
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER policy_change_rejections_no_truncate
    BEFORE TRUNCATE ON policy_change_rejections
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- projection_checkpoints must be updated to advance, so it is not append-only;
-- instead a position is never deleted, never renamed, and only moves forward.
-- Only the owner may move one back: a replay swapping in a rebuilt table sets
-- the position to where the rebuild stands (replay/shadow.py).
CREATE OR REPLACE FUNCTION projection_checkpoint_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF (NEW.projection, NEW.topic, NEW.partition)
                IS DISTINCT FROM (OLD.projection, OLD.topic, OLD.partition) THEN
            RAISE EXCEPTION 'projection_checkpoints: a position''s key never changes'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF NEW.next_offset < OLD.next_offset AND NOT pg_has_role(
                current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'USAGE') THEN
            RAISE EXCEPTION 'projection_checkpoints: % %/% would move back from % to %',
                    OLD.projection, OLD.topic, OLD.partition, OLD.next_offset, NEW.next_offset
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'a projector only advances; only the owner (replay) rewinds';
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'projection_checkpoints: % rejected', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'a projection''s position is never removed; rebuild it with replay';
END;
$$;
CREATE TRIGGER projection_checkpoints_guard
    BEFORE UPDATE OR DELETE ON projection_checkpoints
    FOR EACH ROW EXECUTE FUNCTION projection_checkpoint_guard();
CREATE TRIGGER projection_checkpoints_no_truncate
    BEFORE TRUNCATE ON projection_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION projection_checkpoint_guard();
