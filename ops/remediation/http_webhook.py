"""An HTTP webhook action, over urllib: signed, keyed, bounded, retried.

The body is the remediation as sorted-key JSON, the same bytes on every
attempt and after every restart, so the signature and the key are stable:

- ``Idempotency-Key: {decisionId}:{action}``: the receiver applies a key once
  and answers a repeat with the same 2xx. That is the half of exactly-once the
  worker cannot do: after a crash between the call and the commit of
  ``applied``, the worker calls again with the same key.
- ``X-Kernel-Signature: sha256=<hex HMAC-SHA256 of the body>`` with the
  action's secret: the receiver checks it before anything else.

Redirects are not followed: a 3xx is a final failure, so the signed body
and its key never travel to a host the action does not name. A 2xx is
success. A timeout, a connection error, 408, 425, 429 or a 5xx is retried
after ``backoffS * 2**(n-1)`` seconds, ``retries`` times; any other status is
final (the receiver refused this request; asking again would not help).
Nothing here raises for a failed call: the outcome says what happened,
and the worker records it as ``applied`` or ``failed``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.remediation.actions import ActionSpec, backoff_s

__all__ = ["HttpWebhook", "WebhookResult", "signature", "webhook_body"]

log = logging.getLogger(__name__)
_RETRYABLE = frozenset({408, 425, 429})


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None  # urllib then raises HTTPError with the 3xx status


_OPENER = urllib.request.build_opener(_NoRedirect)


def webhook_body(payload: dict[str, Any]) -> bytes:
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class WebhookResult:
    ok: bool
    attempts: int
    status: int | None  # the last HTTP status, None when none came back
    reason: str
    statuses: list[int | None] = field(default_factory=list)


class HttpWebhook:
    def __init__(
        self, spec: ActionSpec, secret: bytes, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        if spec.url is None:
            raise ValueError(f"action {spec.name!r} has no url")
        self.spec = spec
        self._url = spec.url
        self._secret = secret
        self._sleep = sleep

    def deliver(self, payload: dict[str, Any], idempotency_key: str) -> WebhookResult:
        body = webhook_body(payload)
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key,
            "X-Kernel-Signature": signature(self._secret, body),
            "User-Agent": "kernel-remediation",
        }
        statuses: list[int | None] = []
        reason = ""
        for attempt in range(1, self.spec.retries + 2):
            if attempt > 1:
                self._sleep(backoff_s(self.spec.backoff_s, attempt - 1))
            status, reason = self._attempt(body, headers)
            statuses.append(status)
            if status is not None and 200 <= status < 300:
                return WebhookResult(True, attempt, status, f"HTTP {status}", statuses)
            if status is not None and not (status >= 500 or status in _RETRYABLE):
                break  # the receiver refused the request itself
            log.warning(
                "webhook %s (%s), attempt %d of %d: %s",
                self.spec.name, idempotency_key, attempt, self.spec.retries + 1, reason,
            )  # fmt: skip
        attempts = len(statuses)
        return WebhookResult(
            False, attempts, statuses[-1], f"{reason} after {attempts} attempt(s)", statuses
        )

    def _attempt(self, body: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
        request = urllib.request.Request(self._url, data=body, headers=headers, method="POST")  # noqa: S310 - http(s) only (actions.py)
        try:
            with _OPENER.open(request, timeout=self.spec.timeout_s) as response:
                response.read()
                return int(response.status), f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            return int(exc.code), f"HTTP {exc.code}"
        except TimeoutError:
            return None, f"no answer within timeoutS={self.spec.timeout_s:g}"
        except (urllib.error.URLError, OSError) as exc:
            why = getattr(exc, "reason", exc)
            return None, f"cannot reach the webhook: {why}"
