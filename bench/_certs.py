"""A throwaway CA, server and client certificate for benchmarking TLS and mTLS locally."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.certs import LOCALHOST, authority, spiffe

__all__ = ["Certs", "make_certs"]


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_identity: str  # what the API's gate calls the client


def make_certs(out: Path) -> Certs:
    ca = authority(out, "ca")
    server = ca.issue("server", san=LOCALHOST, days=1)
    client = ca.issue("client", san=spiffe("spiffe://bench/checker"), days=1)
    return Certs(
        ca.issued.cert,
        server.cert,
        server.key,
        client.cert,
        client.key,
        "cert:spiffe://bench/checker",
    )
