"""The approvers registry: who may approve (id -> Ed25519 key) and how many must (k).

The registry is a fold over the approvals topic. It starts from a **genesis**
(the first ``approval`` event of kind ``genesis`` on the log, published from
a file by ``kernel approvers genesis FILE``)::

    {"threshold": 3, "approvers": [{"approverId": "ana", "publicKey": "<base64>"}, ...]}

and changes only by a quorum of the *current* registry over a statement with
subject ``approvers`` and version = the current registry version: adding or
removing an approver, or changing k. Each applied change increments the
version, so an approval of one change cannot be replayed on a later registry.
The same document shape (plus ``version``) is what ``kernel approvers export``
writes and what the offline quorum check reads.

A change that would make quorum impossible (k > n, k < 1) is refused: the
registry must always be able to approve its own repair.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.approvals.errors import RegistryError
from streams.chain.errors import SignerError
from streams.chain.signing import Verifier, b64, unb64

__all__ = [
    "APPROVERS_SUBJECT",
    "DEFAULT_THRESHOLD",
    "ApproverRegistry",
    "add_action",
    "parse_registry",
    "remove_action",
    "threshold_action",
]

APPROVERS_SUBJECT = "approvers"
DEFAULT_THRESHOLD = 3
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$")


def add_action(approver_id: str, public_key: bytes) -> str:
    return f"add:{approver_id}:{b64(public_key)}"


def remove_action(approver_id: str) -> str:
    return f"remove:{approver_id}"


def threshold_action(k: int) -> str:
    return f"threshold:{k}"


@dataclass(frozen=True, slots=True)
class ApproverRegistry:
    version: int
    threshold: int
    approvers: Mapping[str, bytes] = field(default_factory=dict)  # id -> raw public key

    @property
    def size(self) -> int:
        return len(self.approvers)

    def verifier(self, approver_id: str) -> Verifier | None:
        key = self.approvers.get(approver_id)
        return None if key is None else Verifier(key)

    def apply(self, action: str) -> ApproverRegistry:
        """The registry after the approved change ``action``; RegistryError if illegal."""
        verb, _, rest = action.partition(":")
        approvers = dict(self.approvers)
        threshold = self.threshold
        if verb == "add":
            approver_id, _, key = rest.partition(":")
            _check_id(approver_id)
            if approver_id in approvers:
                raise RegistryError(f"approver {approver_id!r} is already registered")
            approvers[approver_id] = _public_key(key, approver_id)
        elif verb == "remove":
            if rest not in approvers:
                raise RegistryError(f"approver {rest!r} is not registered")
            del approvers[rest]
        elif verb == "threshold":
            try:
                threshold = int(rest)
            except ValueError:
                raise RegistryError(f"threshold:{rest!r} is not an integer") from None
        else:
            raise RegistryError(
                f"unknown registry change {action!r}; expected add:ID:KEY, remove:ID or threshold:K"
            )
        _check_quorum_possible(threshold, len(approvers))
        return ApproverRegistry(self.version + 1, threshold, approvers)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "threshold": self.threshold,
            "approvers": [
                {"approverId": a, "publicKey": b64(k)} for a, k in sorted(self.approvers.items())
            ],
        }


def parse_registry(doc: Any) -> ApproverRegistry:
    """A genesis file or an exported registry, strictly; version 1 when absent."""
    if not isinstance(doc, dict) or not isinstance(doc.get("approvers"), list):
        raise RegistryError(
            'an approvers file is {"threshold": K, "approvers": '
            '[{"approverId": ID, "publicKey": BASE64}, ...]}'
        )
    threshold = doc.get("threshold", DEFAULT_THRESHOLD)
    version = doc.get("version", 1)
    if not isinstance(threshold, int) or not isinstance(version, int) or version < 1:
        raise RegistryError("threshold and version must be integers (version >= 1)")
    approvers: dict[str, bytes] = {}
    for i, entry in enumerate(doc["approvers"]):
        if not isinstance(entry, dict):
            raise RegistryError(f"approvers[{i}] is not an object")
        approver_id, key = entry.get("approverId"), entry.get("publicKey")
        if not isinstance(approver_id, str) or not isinstance(key, str):
            raise RegistryError(f"approvers[{i}] needs an approverId and a base64 publicKey")
        _check_id(approver_id)
        if approver_id in approvers:
            raise RegistryError(f"approver {approver_id!r} is listed twice")
        approvers[approver_id] = _public_key(key, approver_id)
    _check_quorum_possible(threshold, len(approvers))
    return ApproverRegistry(version, threshold, approvers)


def _check_id(approver_id: str) -> None:
    if not _ID.match(approver_id):
        raise RegistryError(
            f"approver id {approver_id!r} must be 1-128 of letters, digits, '.', '_', '@', '-'"
        )


def _public_key(text: str, approver_id: str) -> bytes:
    try:
        return Verifier(unb64(text)).public_key
    except (ValueError, SignerError) as exc:
        raise RegistryError(f"approver {approver_id!r}: bad publicKey: {exc}") from exc


def _check_quorum_possible(threshold: int, size: int) -> None:
    if threshold < 1:
        raise RegistryError(f"the threshold k must be at least 1, got {threshold}")
    if threshold > size:
        raise RegistryError(
            f"the threshold k={threshold} exceeds the {size} registered approver(s): "
            "no quorum could ever be reached"
        )
