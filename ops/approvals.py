"""Adapter: the approvals topic read into the pure fold, and the gate built from it.

The approvals topic is small (one partition, a few events per request), so the
CLI, the API's approval routes and the policy registry projection read it
whole, from offset 0, whenever they need it (``read_committed``: an aborted
publish is never seen). See :mod:`streams.approvals.log` for the fold.
"""

from __future__ import annotations

import time

from confluent_kafka import KafkaException

from ops.bootstrap import Kernel
from schemas.errors import LogUnavailableError
from streams.approvals.log import ActivationGate, ApprovalsLog
from streams.kafka.clients import KafkaClients

__all__ = ["activation_gate", "load_approvals", "now_ms"]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def load_approvals(kernel: Kernel, attempts: int = 5) -> ApprovalsLog:
    """The approvals topic folded, as of its end at call time (empty if it does not exist).

    A topic just created may have no leader yet for a moment ("not leader for
    partition"): a failed read is retried a few times (about 3 s) before it is
    reported as the log being unavailable.
    """
    for attempt in range(1, attempts + 1):
        try:
            return _read(kernel)
        except LogUnavailableError:
            if attempt == attempts:
                raise
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")


def _read(kernel: Kernel) -> ApprovalsLog:
    topic = kernel.names.approvals
    reader = kernel.log_reader(kernel.settings.publish_timeout_s)
    try:
        parts = reader.partitions(topic)
        if not parts:  # no approvals yet; KERNEL_APPROVALS_REQUIRED=1 still refuses
            return ApprovalsLog()
        return ApprovalsLog.of(r.event for p in parts for r in reader.iter(topic, p, 0))
    except KafkaException as exc:
        raise LogUnavailableError(
            f"Kafka at {KafkaClients.of(kernel.kafka).bootstrap}: {exc}"
        ) from exc
    finally:
        reader.close()


def activation_gate(kernel: Kernel, log: ApprovalsLog | None = None) -> ActivationGate:
    """The k-of-n rule for HIGH/CRITICAL activations, over the approvals on the log now."""
    return ActivationGate(
        log if log is not None else load_approvals(kernel),
        required=kernel.settings.approvals_required,
        now_ms=now_ms(),
    )
