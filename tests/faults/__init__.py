"""The fault suite: kill everything at the worst moment, prove nothing is lost.

Runs on a stack of its own (its own Kafka and Postgres, other ports, a state
directory under /var/tmp) because it kills the broker and stops Postgres. See
docs/fault-suite.md for how to run it and how to read its table.
"""
