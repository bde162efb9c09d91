"""Derived event ids: name-based (version 5) UUIDs as canonical strings.

Kernel derives the ids of the events it computes (chain links, policy checks)
from what they are about, so a replay reproduces them. Computed once per
event on hot paths, so without building ``uuid.UUID`` objects.
"""

from __future__ import annotations

import hashlib
import uuid

__all__ = ["uuid5_text"]


def uuid5_text(namespace: uuid.UUID, name: str) -> str:
    """``str(uuid.uuid5(namespace, name))``."""
    raw = bytearray(hashlib.sha1(namespace.bytes + name.encode(), usedforsecurity=False).digest())
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw[:16].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
