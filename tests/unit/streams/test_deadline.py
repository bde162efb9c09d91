"""CallDeadline: a late call is abandoned at its deadline; results and errors pass through."""

from __future__ import annotations

import threading
import time

import pytest

from streams.kafka.deadline import CallDeadline, CallTimedOut


def test_results_and_exceptions_pass_through_on_one_thread() -> None:
    calls = CallDeadline("t")
    threads = {calls.call(threading.get_ident, 5) for _ in range(20)}
    assert len(threads) == 1 and threading.get_ident() not in threads
    with pytest.raises(ZeroDivisionError):
        calls.call(lambda: 1 // 0, 5)
    assert calls.call(lambda: 42, 5) == 42
    calls.close()


def test_a_hung_call_is_abandoned_and_the_next_call_gets_a_new_thread() -> None:
    calls = CallDeadline("t")
    release = threading.Event()
    first = calls.call(threading.get_ident, 5)
    started = time.monotonic()
    with pytest.raises(CallTimedOut):
        calls.call(release.wait, 0.3)
    assert time.monotonic() - started < 5  # bounded by the deadline, not by the call
    assert calls.abandoned == 1
    assert calls.call(threading.get_ident, 5) != first
    release.set()
    calls.close()


def test_cancel_gives_up_before_the_deadline() -> None:
    calls = CallDeadline("t")
    release = threading.Event()
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    with pytest.raises(CallTimedOut):
        calls.call(release.wait, 60, stop.is_set)
    assert time.monotonic() - started < 30
    release.set()
