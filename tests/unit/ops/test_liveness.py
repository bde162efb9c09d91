"""Heartbeats and the worker's ``/health`` over real HTTP (loopback, fake clock)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from ops import metrics
from ops.liveness import Heartbeats
from ops.worker_http import WorkerHttpServer
from ops.workers import drive


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def beats(clock: Clock) -> Heartbeats:
    return Heartbeats("i1", max_age_s=30, clock=clock)


@pytest.fixture
def server(beats: Heartbeats) -> Iterator[WorkerHttpServer]:
    srv = WorkerHttpServer(beats, 0).start()
    yield srv
    srv.close()


def _get(srv: WorkerHttpServer, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}{path}", timeout=5) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_ticking_should_stop_beats_and_passes_the_answer_through(
    beats: Heartbeats, clock: Clock
) -> None:
    answers = iter([False, False, True])
    tick = beats.ticking("w-tick", lambda: next(answers))
    assert [tick(), tick(), tick()] == [False, False, True]
    gauge = metrics.WORKER_HEARTBEAT_TIMESTAMP.labels("w-tick", "i1")
    assert gauge._value.get() == clock.now


def test_health_is_200_while_fresh_503_naming_the_stale_worker(
    beats: Heartbeats, clock: Clock, server: WorkerHttpServer
) -> None:
    fast = beats.ticking("fast", lambda: False)
    slow = beats.ticking("slow", lambda: False)
    code, body = _get(server, "/health")
    assert code == 503 and "never beat" in json.loads(body)["reason"]
    fast(), slow()
    code, body = _get(server, "/health")
    assert code == 200, body
    assert json.loads(body)["healthy"] is True
    clock.now += 31
    fast()
    code, body = _get(server, "/health")
    doc = json.loads(body)
    assert code == 503
    assert doc["reason"] == "slow: no heartbeat for 31s (limit 30s)"
    assert [w["alive"] for w in doc["workers"]] == [True, False]


def test_a_dead_worker_is_unhealthy_with_its_cause(
    beats: Heartbeats, server: WorkerHttpServer
) -> None:
    tick = beats.ticking("signer", lambda: False)
    tick()
    beats.dead("signer", "ConfigError: no signing key")
    code, body = _get(server, "/health")
    assert code == 503
    assert json.loads(body)["reason"] == "signer: ConfigError: no signing key"


def test_metrics_are_served_beside_health(beats: Heartbeats, server: WorkerHttpServer) -> None:
    beats.ticking("m", lambda: False)()
    code, body = _get(server, "/metrics")
    assert code == 200
    assert 'kernel_worker_heartbeat_timestamp_seconds{instance="i1",worker="m"}' in body
    assert _get(server, "/nope")[0] == 404


class _Runner:
    def __init__(self, fail_run: bool, fail_close: bool) -> None:
        self.fail_run, self.fail_close, self.closed = fail_run, fail_close, False

    def run(self, should_stop: object) -> None:
        if self.fail_run:
            raise RuntimeError("the real cause")

    def close(self) -> None:
        self.closed = True
        if self.fail_close:
            raise RuntimeError("flush failed too")


def test_drive_lets_the_loop_error_win_over_a_failing_close() -> None:
    runner = _Runner(fail_run=True, fail_close=True)
    with pytest.raises(RuntimeError, match="the real cause"):
        drive(runner, lambda: True)
    assert runner.closed


def test_drive_closes_after_a_clean_stop_and_reports_a_failing_close() -> None:
    ok = _Runner(fail_run=False, fail_close=False)
    drive(ok, lambda: True)
    assert ok.closed
    with pytest.raises(RuntimeError, match="flush failed too"):
        drive(_Runner(fail_run=False, fail_close=True), lambda: True)
