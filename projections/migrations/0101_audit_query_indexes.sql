-- Indexes for GET /audit/events: keyset pagination by (ts, chain, seq) and
-- its filters; read-your-writes by source position.
CREATE INDEX IF NOT EXISTS audit_events_ts ON audit_events (ts, chain, seq);
CREATE INDEX IF NOT EXISTS audit_events_type_ts ON audit_events (event_type, ts);
CREATE INDEX IF NOT EXISTS audit_events_actor_ts ON audit_events ((payload->>'actor'), ts);
CREATE INDEX IF NOT EXISTS audit_events_subject_ts ON audit_events ((payload->>'subject'), ts);
CREATE INDEX IF NOT EXISTS audit_events_source_position
    ON audit_events (source_topic, source_partition, source_offset);
