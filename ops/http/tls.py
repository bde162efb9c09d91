"""``kernel api``'s HTTP server: TLS, the client's certificate in each request, JSON errors.

uvicorn terminates TLS (``ssl_certfile``/``ssl_keyfile``; with a client CA,
``CERT_OPTIONAL``: a certificate, when presented, must chain to the CA, and a
caller without one may still use a bearer token). It does not pass the
verified client certificate to the app, so :class:`ClientCertHttpTools`, its
HTTP protocol with one addition, puts it in every request's scope the way the
ASGI TLS extension specifies (``scope["extensions"]["tls"]["client_cert_chain"]``,
PEM), read once per connection. :class:`~ops.http.access.Gate` takes the
identity from there; no other server-specific code reads it.

The same protocol answers what its HTTP parser refuses before the app sees it
-- a request line over the parser's 64 KiB, bytes that are not HTTP -- as the
app answers every other bad request: a 400 with a JSON body naming what was
wrong, not uvicorn's plain text.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from schemas.errors import ConfigError

__all__ = ["KernelHttpTools", "TlsFiles", "plaintext_refusal"]


class KernelHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol: the ASGI TLS extension in each scope; JSON 400s."""

    _tls: dict[str, Any] | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        self._tls = None
        if ssl_object is not None:
            der = ssl_object.getpeercert(binary_form=True)
            chain = [ssl.DER_cert_to_PEM_cert(der)] if der else []
            self._tls = {
                "server_cert": None,
                "client_cert_chain": chain,
                "client_cert_name": None,
                "client_cert_error": None,
                "tls_version": None,
                "cipher_suite": None,
            }

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._tls is not None:
            self.scope["extensions"] = {"tls": self._tls}  # type: ignore[dict-item]

    def send_400_response(self, msg: str) -> None:
        body = orjson.dumps(
            {
                "error": "invalid request",
                "field": "request",
                "reason": f"{msg} (the request line and headers are limited to 64 KiB)",
            }
        )
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.append(b"content-type: application/json\r\n")
        head.append(b"content-length: " + str(len(body)).encode() + b"\r\n")
        head.append(b"connection: close\r\n\r\n")
        self.transport.write(b"".join(head) + body)
        self.transport.close()


@dataclass(frozen=True)
class TlsFiles:
    cert: Path | None
    key: Path | None
    client_ca: Path | None

    @property
    def on(self) -> bool:
        return self.cert is not None

    def check(self) -> None:
        if self.cert is None:
            if self.key is not None or self.client_ca is not None:
                raise ConfigError(
                    "a TLS key or client CA without a certificate: set KERNEL_API_TLS_CERT"
                )
            return
        if self.key is None:
            raise ConfigError("KERNEL_API_TLS_CERT is set without KERNEL_API_TLS_KEY")
        for what, path in (
            ("certificate", self.cert),
            ("key", self.key),
            ("client CA", self.client_ca),
        ):
            if path is not None and not path.is_file():
                raise ConfigError(f"the TLS {what} {path} does not exist")

    def uvicorn_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"http": KernelHttpTools}
        if self.cert is None:
            return kwargs
        kwargs["ssl_certfile"] = str(self.cert)
        kwargs["ssl_keyfile"] = str(self.key)
        if self.client_ca is not None:
            kwargs["ssl_ca_certs"] = str(self.client_ca)
            kwargs["ssl_cert_reqs"] = ssl.CERT_OPTIONAL
        return kwargs


def plaintext_refusal(environment: str, tls: TlsFiles) -> str | None:
    """Why this API must not start, if it would serve production in plaintext."""
    if environment == "production" and not tls.on:
        return (
            "KERNEL_ENV=production refuses a plaintext listener: bearer tokens and audit "
            "payloads would cross the network in clear. Set KERNEL_API_TLS_CERT and "
            "KERNEL_API_TLS_KEY (and KERNEL_API_CLIENT_CA for mutual TLS)"
        )
    return None
