"""Stream processors: pure steps ``(state, record) -> (state, outputs)`` and the
Kafka runners that drive them (producers, the chain signer, SentinelNet)."""
