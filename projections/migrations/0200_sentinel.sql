-- SentinelNet read models, projections of the log (rebuilt by replay).
--
-- policy_registry: every policy version and its current lifecycle state, folded
-- from policyChange events by the same lifecycle rules that accepted them.
CREATE TABLE IF NOT EXISTS policy_registry (
    policy_id      text             NOT NULL,
    version        int              NOT NULL CHECK (version >= 1),
    name           text             NOT NULL,
    severity       text             NOT NULL,
    state          text             NOT NULL,
    canary_percent double precision NOT NULL DEFAULT 0,
    definition     jsonb            NOT NULL,  -- the policy's JSON mapping, state included
    created_at     timestamptz      NOT NULL,
    updated_at     timestamptz      NOT NULL,
    PRIMARY KEY (policy_id, version)
);

-- policy_history: every accepted change, in log order per policy (seq from 0),
-- with the actor; "superseded" rows record the deprecation an activation caused.
CREATE TABLE IF NOT EXISTS policy_history (
    policy_id  text        NOT NULL,
    seq        int         NOT NULL CHECK (seq >= 0),
    version    int         NOT NULL,
    change     text        NOT NULL,
    from_state text,
    to_state   text        NOT NULL,
    actor      text        NOT NULL,
    ts         timestamptz NOT NULL,
    reason     text,
    event_id   uuid,
    PRIMARY KEY (policy_id, seq)
);

-- Changes on the log that the lifecycle rejected (two operators raced): kept
-- visible instead of silently dropped.
CREATE TABLE IF NOT EXISTS policy_change_rejections (
    event_id         uuid        NOT NULL,
    policy_id        text,
    reason           text        NOT NULL,
    ts               timestamptz NOT NULL,
    source_topic     text        NOT NULL,
    source_partition int         NOT NULL,
    source_offset    bigint      NOT NULL,
    PRIMARY KEY (source_topic, source_partition, source_offset)
);

-- policy_checks: the explain table, one row per policyCheck (ids are
-- deterministic, so a replayed check lands on its own row).
CREATE TABLE IF NOT EXISTS policy_checks (
    policy_check_id  uuid        PRIMARY KEY,
    event_id         uuid        NOT NULL,  -- the policyCheck event's envelope id
    request_id       text,
    decision         text        NOT NULL,
    allowed          boolean     NOT NULL,
    policy_id        text,
    policy_version   int,
    rationale        text        NOT NULL,
    evidence         jsonb       NOT NULL,
    evaluations      jsonb       NOT NULL,
    sim_mode         boolean     NOT NULL,
    mode             text        NOT NULL,
    subject          text        NOT NULL,
    subject_event_id text,
    action_topic     text,       -- where the evaluated event is (null for a sync request)
    action_partition int,
    action_offset    bigint,
    ts               timestamptz NOT NULL,
    source_topic     text        NOT NULL,  -- where this policyCheck is on the log
    source_partition int         NOT NULL,
    source_offset    bigint      NOT NULL
);
CREATE INDEX IF NOT EXISTS policy_checks_subject_event ON policy_checks (subject_event_id);
CREATE INDEX IF NOT EXISTS policy_checks_policy_ts ON policy_checks (policy_id, ts);

-- Explain resolves "where is the evaluated event in the audit chain" by its log
-- position; audit_events (0100) is indexed by id only.
CREATE INDEX IF NOT EXISTS audit_events_source
    ON audit_events (source_topic, source_partition, source_offset);

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'kernel_projector') THEN
        CREATE ROLE kernel_projector NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END;
$$;
GRANT SELECT, INSERT, UPDATE ON policy_registry, policy_history, policy_change_rejections,
    policy_checks TO kernel_projector;
