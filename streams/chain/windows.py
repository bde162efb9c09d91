"""Which positions of which chain a key may sign: validity windows and revocations.

A position is ``(chain, seq)``. Each key of ``signers.json`` may carry::

    "validFrom":   {chain: seq}   the first seq it signs (absent chain: 0)
    "validUntil":  {chain: seq}   the first seq it no longer signs (exclusive);
                                  once the map is present, an absent chain is 0:
                                  the chain did not exist while the key signed
    "revokedFrom": {chain: seq}   every record it signed at or after seq is void;
                                  "*" stands for every chain not listed

A key without these fields is valid everywhere (the ``signers.json`` of
before rotation still loads and means what it meant). The maps are built from
the log's ``keyRotation`` records (:mod:`streams.chain.rotation`): a rotation
link at seq ``r`` of a chain is the last record the outgoing key signs, so the
outgoing key's ``validUntil`` and the incoming key's ``validFrom`` there are
both ``r + 1``. A key's window is a property of the key, not of one record:
:func:`window_flag` tells, for one record, why its key could not sign it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streams.chain.errors import KeyFileError

__all__ = ["ANY_CHAIN", "KeyWindow", "parse_window", "window_flag"]

ANY_CHAIN = "*"  # in revokedFrom: every chain not named


@dataclass(frozen=True, slots=True)
class KeyWindow:
    valid_from: Mapping[str, int] = field(default_factory=dict)
    valid_until: Mapping[str, int] | None = None
    revoked_from: Mapping[str, int] = field(default_factory=dict)

    @property
    def unbounded(self) -> bool:
        return not self.valid_from and self.valid_until is None and not self.revoked_from

    def revocation(self, chain: str) -> int | None:
        """The first seq of ``chain`` this key's signature no longer vouches for."""
        at = self.revoked_from.get(chain)
        return self.revoked_from.get(ANY_CHAIN) if at is None else at

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.valid_from:
            out["validFrom"] = dict(sorted(self.valid_from.items()))
        if self.valid_until is not None:
            out["validUntil"] = dict(sorted(self.valid_until.items()))
        if self.revoked_from:
            out["revokedFrom"] = dict(sorted(self.revoked_from.items()))
        return out


def window_flag(signer_id: str, window: KeyWindow | None, chain: str, seq: int) -> str | None:
    """Why ``signer_id`` (with ``window``) could not sign ``(chain, seq)``; None if it could.

    Revocation is named first: a record both outside the window and after a
    revocation is reported as revoked, the graver of the two.
    """
    if window is None or window.unbounded:
        return None
    revoked = window.revocation(chain)
    if revoked is not None and seq >= revoked:
        return f"signed by revoked key {signer_id!r} after position {chain}@{revoked}"
    start = window.valid_from.get(chain, 0)
    end = None if window.valid_until is None else window.valid_until.get(chain, 0)
    if seq < start or (end is not None and seq >= end):
        shown = f"{start}..{'' if end is None else end - 1}"
        if end is not None and end <= start:
            shown = "none"
        return f"signed outside key {signer_id!r}'s window on {chain} (seqs {shown})"
    return None


def parse_window(entry: Mapping[str, Any], where: str) -> KeyWindow | None:
    """The window of one ``signers.json`` entry; None when it names none (back-compat)."""
    maps = [_positions(entry, name, where) for name in ("validFrom", "validUntil", "revokedFrom")]
    if all(m is None for m in maps):
        return None
    valid_from, valid_until, revoked_from = maps
    if ANY_CHAIN in (valid_from or {}) or ANY_CHAIN in (valid_until or {}):
        raise KeyFileError(f"{where}: '*' is only meaningful in revokedFrom")
    return KeyWindow(valid_from or {}, valid_until, revoked_from or {})


def _positions(entry: Mapping[str, Any], name: str, where: str) -> dict[str, int] | None:
    value = entry.get(name)
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and k and type(v) is int and v >= 0 for k, v in value.items()
    ):
        raise KeyFileError(f"{where}: {name} must map chain ids to seqs (integers >= 0)")
    return dict(value)
