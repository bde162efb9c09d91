"""Each worker its own ``kernel run NAME`` process, restarted whenever it exits.

This is the supervisor an operator would run (systemd's ``Restart=always``):
it restarts on any exit and records every exit with its code and whether the
harness asked for it (a kill -9, a retirement, the final SIGTERM). An exit
nobody asked for is a crash; one with code 0 is a finding of its own -- a
supervisor that restarts only on failure would never see that worker again.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Exit", "Supervisor", "free_port", "supports_instance_flag"]

_RESTART_DELAY_S = 0.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def supports_instance_flag(env: dict[str, str]) -> bool:
    """``kernel run --instance N`` exists (helper "ops" adds it); else the env var only."""
    done = subprocess.run(
        [sys.executable, "-m", "ops.cli", "run", "--help"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return "--instance" in done.stdout


def _last_line(log: Path) -> str:
    """The last line that is not librdkafka chatter."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        if line.strip() and "librdkafka" not in line and not line.startswith("%"):
            return line.strip()[:300]
    return ""


@dataclass(frozen=True)
class Exit:
    worker: str
    instance: str
    code: int
    asked: bool  # the harness killed or stopped it
    uptime_s: float
    at: float  # monotonic
    last_line: str = ""  # the log's last line: the cause, for an exit nobody asked for


@dataclass
class _Member:
    worker: str
    instance: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    starts: int = 0
    wanted: bool = True
    asked: bool = False  # the next exit was requested
    start_times: list[float] = field(default_factory=list)
    log: Path | None = None
    metrics: bool = False  # pass a fresh --metrics-port to each start
    port: int = 0


class Supervisor:
    def __init__(self, env: dict[str, str], log_dir: Path, *, instance_flag: bool) -> None:
        self.env = env
        self.log_dir = log_dir
        self.instance_flag = instance_flag
        self.exits: list[Exit] = []
        self.errors: list[str] = []
        self.ignored_sigterm: list[str] = []  # still running ``timeout_s`` after SIGTERM
        self.term: dict[str, tuple[int, float]] = {}  # member -> (exit code, seconds to exit)
        self._members: dict[tuple[str, str], _Member] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="supervisor", daemon=True)

    # -- membership ---------------------------------------------------------
    def add_worker(self, worker: str, instance: str = "0") -> None:
        argv = [sys.executable, "-m", "ops.cli", "run", worker]
        if self.instance_flag:
            argv += ["--instance", instance]
        self._add(worker, instance, argv, {"KERNEL_INSTANCE_ID": instance}, metrics=True)

    def add_api(self, port: int) -> None:
        argv = [sys.executable, "-m", "ops.cli", "api", "--port", str(port)]
        self._add("api", "0", argv, {})

    def _add(
        self,
        worker: str,
        instance: str,
        argv: list[str],
        extra: dict[str, str],
        *,
        metrics: bool = False,
    ) -> None:
        member = _Member(worker, instance, argv, {**self.env, **extra}, metrics=metrics)
        with self._lock:
            self._members[(worker, instance)] = member
            self._spawn(member)

    def start(self) -> None:
        self._thread.start()

    def members(self) -> list[tuple[str, str]]:
        with self._lock:
            return [k for k, m in self._members.items() if m.wanted]

    def all_members(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._members)

    def metrics_targets(self) -> list[tuple[str, int]]:
        """(process, metrics port) of every live ``kernel run`` process."""
        with self._lock:
            return [
                (f"{m.worker}#{m.instance}/{m.starts}", m.port)
                for m in self._members.values()
                if m.metrics and m.proc is not None and m.proc.poll() is None
            ]

    def starts(self, worker: str, instance: str = "0") -> int:
        with self._lock:
            return self._members[(worker, instance)].starts

    # -- faults ---------------------------------------------------------------
    def kill9(self, worker: str, instance: str = "0", *, restart: bool = True) -> bool:
        """SIGKILL the member; the loop restarts it unless ``restart`` is False."""
        with self._lock:
            member = self._members[(worker, instance)]
            member.wanted = restart
            proc = member.proc
            if proc is None or proc.poll() is not None:
                return False
            member.asked = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            self._reap(member, proc.wait(timeout=30))
            if restart:
                self._spawn(member)
        return True

    def stop_all(self, timeout_s: float = 40.0) -> None:
        """SIGTERM every member (an asked exit), SIGKILL past ``timeout_s``.

        Each ``kernel run`` worker gets SIGUSR1 first and writes its threads' stacks
        to its log, so a stall that lasted to the end can be read after the run.
        """
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        with self._lock:
            live = [m for m in self._members.values() if m.proc and m.proc.poll() is None]
            # First every `kernel run` worker's thread stacks into its log (SIGUSR1,
            # faulthandler): a worker stalled at the end shows where it is stuck.
            for m in live:
                if m.metrics and m.proc is not None:
                    with contextlib.suppress(ProcessLookupError):
                        m.proc.send_signal(signal.SIGUSR1)
            if any(m.metrics for m in live):
                time.sleep(0.5)
            for m in live:
                m.wanted, m.asked = False, True
                assert m.proc is not None
                m.proc.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            pending = list(live)
            while pending and time.monotonic() - sent < timeout_s:
                for m in [m for m in pending if m.proc is not None and m.proc.poll() is not None]:
                    assert m.proc is not None
                    self.term[f"{m.worker}#{m.instance}"] = (
                        m.proc.returncode,
                        time.monotonic() - sent,
                    )
                    self._reap(m, m.proc.returncode)
                    pending.remove(m)
                time.sleep(0.05)
            for m in pending:
                assert m.proc is not None
                self.ignored_sigterm.append(f"{m.worker}#{m.instance}")
                m.proc.kill()
                self.term[f"{m.worker}#{m.instance}"] = (m.proc.wait(timeout=30), timeout_s)
                self._reap(m, m.proc.returncode)
            for m in self._members.values():  # exited but not yet seen by the loop
                if m.proc is not None and m.proc.poll() is not None:
                    self._reap(m, m.proc.returncode)

    # -- internals --------------------------------------------------------------
    def _spawn(self, member: _Member) -> None:
        member.starts += 1
        member.log = self.log_dir / f"{member.worker}-{member.instance}-{member.starts:03d}.log"
        argv = list(member.argv)
        if member.metrics:
            member.port = free_port()
            argv += ["--metrics-port", str(member.port)]
        with member.log.open("wb") as log:
            member.proc = subprocess.Popen(
                argv, env=member.env, stdout=log, stderr=subprocess.STDOUT
            )
        member.started_at = time.monotonic()
        member.start_times.append(member.started_at)
        member.asked = False

    def _reap(self, member: _Member, code: int) -> None:
        now = time.monotonic()
        last = "" if member.asked or member.log is None else _last_line(member.log)
        self.exits.append(
            Exit(
                member.worker, member.instance, code, member.asked,
                now - member.started_at, now, last,
            )
        )  # fmt: skip
        member.proc = None

    def _loop(self) -> None:
        try:
            while not self._stop.wait(0.2):
                with self._lock:
                    for member in self._members.values():
                        proc = member.proc
                        if proc is not None and proc.poll() is not None:
                            self._reap(member, proc.returncode)
                        if (
                            member.proc is None
                            and member.wanted
                            and not self._stop.is_set()
                            and time.monotonic() - self._last_exit(member) >= _RESTART_DELAY_S
                        ):
                            self._spawn(member)
        except Exception as exc:  # a harness bug must fail the run, not vanish in a thread
            self.errors.append(f"supervisor loop: {exc!r}")

    def _last_exit(self, member: _Member) -> float:
        for e in reversed(self.exits):
            if (e.worker, e.instance) == (member.worker, member.instance):
                return e.at
        return 0.0

    def logs(self, worker: str | None = None) -> Sequence[Path]:
        pattern = f"{worker}-*.log" if worker else "*.log"
        return sorted(self.log_dir.glob(pattern))
