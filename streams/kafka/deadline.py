"""Run a blocking client call with a deadline the caller can rely on.

librdkafka 2.x does not always honour the timeout of a transactional call:
after a broker restart ``send_offsets_to_transaction(..., 30)`` was seen to
block for ~10 minutes (until the broker closed the idle connection). The
runner therefore never makes such a call on its own thread: a
:class:`CallDeadline` hands it to a helper thread and waits at most
``deadline_s``. When the call is late the helper thread is *abandoned* (it is
a daemon; it ends whenever the library returns) and :class:`CallTimedOut` is
raised, so the caller can drop the client the call was stuck in and build a
new one.

One helper thread serves every call until one is abandoned, so a call costs
two queue hand-offs, not a thread start.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["CallCancelled", "CallDeadline", "CallTimedOut"]

T = TypeVar("T")


class CallTimedOut(Exception):  # noqa: N818 - reads as what happened
    """The call did not return within its deadline; its thread was abandoned."""


class CallCancelled(CallTimedOut):
    """The caller gave up waiting (``cancel`` said so), before the deadline."""


class _Job:
    __slots__ = ("done", "error", "fn", "result")

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


def _serve(jobs: queue.SimpleQueue[_Job | None]) -> None:
    while (job := jobs.get()) is not None:
        try:
            job.result = job.fn()
        except BaseException as exc:  # handed to the waiting caller, who re-raises it
            job.error = exc
        job.done.set()


class CallDeadline:
    def __init__(self, name: str) -> None:
        self.name = name
        self.abandoned = 0
        self._jobs: queue.SimpleQueue[_Job | None] | None = None

    def call(
        self, fn: Callable[[], T], deadline_s: float, cancel: Callable[[], bool] | None = None
    ) -> T:
        """``fn()`` on the helper thread; its result or exception, or CallTimedOut.

        ``cancel`` (checked every 0.1 s) gives up early, e.g. on SIGTERM.
        """
        if self._jobs is None:
            self._jobs = queue.SimpleQueue()
            threading.Thread(
                target=_serve, args=(self._jobs,), name=f"{self.name}-calls", daemon=True
            ).start()
        job = _Job(fn)
        self._jobs.put(job)
        answered = self._wait(job, deadline_s, cancel)
        if not answered:
            self._jobs.put(None)  # the stuck thread exits once the library lets it go
            self._jobs = None
            self.abandoned += 1
            if cancel is not None and cancel():
                raise CallCancelled(f"{self.name}: cancelled while waiting for an answer")
            raise CallTimedOut(f"{self.name}: no answer within {deadline_s:.0f}s")
        if job.error is not None:
            raise job.error
        return job.result  # type: ignore[no-any-return]

    @staticmethod
    def _wait(job: _Job, deadline_s: float, cancel: Callable[[], bool] | None) -> bool:
        if cancel is None:
            return job.done.wait(deadline_s)
        end = time.monotonic() + deadline_s
        while not job.done.wait(min(0.1, max(0.0, end - time.monotonic()))):
            if cancel() or time.monotonic() >= end:
                return False
        return True

    def close(self) -> None:
        if self._jobs is not None:
            self._jobs.put(None)
            self._jobs = None
