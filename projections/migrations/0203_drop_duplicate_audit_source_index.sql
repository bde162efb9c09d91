-- 0101 (audit_events_source_position) and 0200 (audit_events_source) both
-- index audit_events (source_topic, source_partition, source_offset): every
-- projected row paid for the same index twice. Keep 0101's.
DROP INDEX IF EXISTS audit_events_source;
