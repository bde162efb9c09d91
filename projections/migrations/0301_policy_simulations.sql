-- policy_simulations: one row per policySimulation event on the policies topic
-- (docs/decisions/0022), written by the policy registry projection in the same
-- transaction as its checkpoint, so the table is rebuilt from the log like every
-- read model. Append-only: a report is a fact; a new simulation is a new row.
CREATE TABLE IF NOT EXISTS policy_simulations (
    simulation_id    uuid PRIMARY KEY,
    event_id         uuid NOT NULL,
    policy_id        text NOT NULL,
    version          integer NOT NULL,
    actor            text NOT NULL,
    ts               timestamptz NOT NULL,
    actions_topic    text NOT NULL,
    sim_window       jsonb NOT NULL,
    ranges           jsonb NOT NULL,
    active_set       jsonb NOT NULL,
    report           jsonb NOT NULL,
    source_topic     text NOT NULL,
    source_partition integer NOT NULL,
    source_offset    bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS policy_simulations_by_policy
    ON policy_simulations (policy_id, ts DESC);

REVOKE ALL ON policy_simulations
    FROM kernel_projector, kernel_sentinel_projector, kernel_api, kernel_auditor;
-- INSERT ... ON CONFLICT (simulation_id) DO NOTHING needs SELECT on the target column
GRANT INSERT, SELECT (simulation_id) ON policy_simulations TO kernel_sentinel_projector;
GRANT SELECT ON policy_simulations TO kernel_api;

CREATE TRIGGER policy_simulations_append_only
    BEFORE UPDATE OR DELETE ON policy_simulations
    FOR EACH ROW EXECUTE FUNCTION audit_append_only();
CREATE TRIGGER policy_simulations_no_truncate
    BEFORE TRUNCATE ON policy_simulations
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
