"""Rebuild projections from the log, verify chains, checkpoints and proofs."""
