"""The local stack: real Apache Kafka (KRaft) and real PostgreSQL, no Docker.

``kernel up`` / ``down`` / ``status`` and the test suite's session fixture use
the same :class:`~ops.stack.stack.LocalStack`.
"""

from ops.stack.stack import LocalStack, StackStatus

__all__ = ["LocalStack", "StackStatus"]
