-- The signed audit chain's projection: one row per chain record, append-only.
-- payload is the whole event JSON the hash covers; id, event_type, ts and
-- metadata are copies of payload fields for querying (audit-verify checks
-- they agree with payload). Nothing here is trusted: audit-verify recomputes
-- every hash and signature, so a superuser who bypasses the trigger is caught.
CREATE TABLE IF NOT EXISTS audit_events (
    id               uuid        NOT NULL,
    chain            text        NOT NULL,
    seq              bigint      NOT NULL CHECK (seq >= 0),
    event_type       text        NOT NULL,
    payload          jsonb       NOT NULL,
    prev_hash        text        NOT NULL,
    hash             text        NOT NULL,
    signature        text        NOT NULL,
    signer_id        text        NOT NULL,
    ts               timestamptz NOT NULL,
    metadata         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    source_topic     text        NOT NULL,
    source_partition int         NOT NULL,
    source_offset    bigint      NOT NULL,
    CONSTRAINT audit_events_chain_seq UNIQUE (chain, seq)
);
CREATE INDEX IF NOT EXISTS audit_events_id ON audit_events (id);

-- Signed Merkle checkpoints (C2SP notes) over each chain, as published by the signer.
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    chain      text        NOT NULL,
    size       bigint      NOT NULL CHECK (size >= 0),
    root_hash  text        NOT NULL,
    head_hash  text        NOT NULL,
    signer_id  text        NOT NULL,
    note       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chain, size)
);

CREATE OR REPLACE FUNCTION audit_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % rejected', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'audit records are never changed; a correction is a new event';
END;
$$;

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_append_only
    BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate
    BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();

-- The projector's role: it may add rows and read them, nothing else. Roles are
-- cluster-wide, so another database's migration may have created it already
-- (possibly at this very moment: hence the exception handler).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'kernel_projector') THEN
        CREATE ROLE kernel_projector NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END;
$$;
REVOKE ALL ON audit_events, audit_checkpoints FROM kernel_projector;
GRANT SELECT, INSERT ON audit_events, audit_checkpoints TO kernel_projector;
-- Its resume position lives in projection_checkpoints (0001), an upserted table.
GRANT SELECT, INSERT, UPDATE ON projection_checkpoints TO kernel_projector;
