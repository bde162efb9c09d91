"""The HTTP webhook adapter against a real local receiver (no Kafka)."""

from __future__ import annotations

import hashlib
import hmac
import socket
import time

from ops.remediation.http_webhook import HttpWebhook, signature, webhook_body
from streams.remediation.actions import ActionSpec
from tests.integration.remediation.receiver import SECRET, serving


def _hook(url: str, *, retries: int = 3, timeout_s: float = 1.0) -> tuple[HttpWebhook, list[float]]:
    spec = ActionSpec("page", "webhook", url=url, timeout_s=timeout_s, retries=retries,
                      backoff_s=0.5, secret_env="X")  # fmt: skip
    pauses: list[float] = []
    return HttpWebhook(spec, SECRET, sleep=pauses.append), pauses


def test_the_body_is_signed_keyed_and_the_same_on_every_attempt() -> None:
    with serving() as receiver:
        hook, _ = _hook(receiver.url)
        payload = {"b": 1, "a": "x"}
        first = hook.deliver(payload, "k1")
        again = hook.deliver(payload, "k1")
    assert first.ok and again.ok and first.status == 200
    assert receiver.bad_signatures == 0
    assert receiver.deliveries == {"k1": 2} and receiver.effects == {"k1": 1}
    assert receiver.bodies["k1"] == payload
    assert webhook_body(payload) == b'{"a":"x","b":1}'  # sorted: stable bytes, stable HMAC
    assert (
        signature(SECRET, b"{}") == "sha256=" + hmac.new(SECRET, b"{}", hashlib.sha256).hexdigest()
    )


def test_a_5xx_is_retried_with_exponential_backoff_a_4xx_is_final() -> None:
    with serving() as receiver:
        receiver.status = 503
        hook, pauses = _hook(receiver.url, retries=3)
        result = hook.deliver({}, "k1")
        assert not result.ok and result.attempts == 4 and result.statuses == [503] * 4
        assert pauses == [0.5, 1.0, 2.0]
        assert result.reason == "HTTP 503 after 4 attempt(s)"
        receiver.status = 404
        hook, pauses = _hook(receiver.url, retries=3)
        result = hook.deliver({}, "k2")
        assert (result.ok, result.attempts, pauses) == (False, 1, [])
        receiver.status = 429
        result = hook.deliver({}, "k3")
        assert result.attempts == 4  # too many requests: retried
        receiver.status = 302  # not followed: the signed body stays with the named host
        result = hook.deliver({}, "k4")
        assert (result.ok, result.status, result.attempts) == (False, 302, 1)
        assert receiver.deliveries["k4"] == 1


def test_a_wrong_secret_is_refused_by_the_receiver() -> None:
    with serving() as receiver:
        spec = ActionSpec("page", "webhook", url=receiver.url, retries=0, secret_env="X")
        result = HttpWebhook(spec, b"not the secret").deliver({}, "k1")
    assert (result.ok, result.status, receiver.bad_signatures) == (False, 401, 1)
    assert receiver.effects == {}


def test_no_answer_in_time_and_no_receiver_at_all_are_retried_then_failed() -> None:
    with serving() as receiver:
        receiver.on_delivery = lambda _key, _n: time.sleep(0.6)
        hook, _ = _hook(receiver.url, retries=1, timeout_s=0.2)
        result = hook.deliver({}, "k1")
    assert not result.ok and result.attempts == 2 and result.status is None
    assert "no answer within timeoutS=0.2" in result.reason
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connection refused
        hook, pauses = _hook(f"http://127.0.0.1:{port}/", retries=2)
        result = hook.deliver({}, "k1")
    assert not result.ok and result.attempts == 3 and pauses == [0.5, 1.0]
    assert "cannot reach the webhook" in result.reason
