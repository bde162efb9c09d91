"""The remediations view, rebuilt from the log: a fold, never an action.

Every ``remediation`` event of the topic, in order, through the state
machine's :func:`~streams.remediation.machine.observe` -- the same fold the
worker recovers with, without :func:`~streams.remediation.machine.react`, so
rebuilding the view decides nothing and calls no webhook (this layer cannot
even import the worker: ``.importlinter``, replay below ops). ``kernel
remediation list|show`` read it.
"""

from __future__ import annotations

from streams.processor import LogReader
from streams.remediation.machine import RemediationBook, observe

__all__ = ["remediation_view"]


def remediation_view(reader: LogReader, topic: str) -> RemediationBook:
    book = RemediationBook()
    for partition in reader.partitions(topic):
        for record in reader.read(topic, partition, 0, None):
            book = observe(book, record.event)
    return book
