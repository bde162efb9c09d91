"""Detached service processes tracked by pid files, and readiness waits."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ops.stack.errors import StackError

__all__ = ["log_tail", "pid_alive", "port_open", "read_pid", "spawn", "stop_pid", "wait_until"]


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def pid_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as dead.
    with contextlib.suppress(FileNotFoundError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def spawn(argv: Sequence[str], log_file: Path, pid_file: Path, env: dict[str, str]) -> int:
    """Start ``argv`` in its own session so it outlives the CLI that started it.

    ``posix_spawn`` rather than ``subprocess.Popen``: the service is not our
    child to manage, and a Popen object dropped while its process runs is a
    ResourceWarning. Zombies are handled by :func:`pid_alive`/:func:`stop_pid`.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    pid = os.posix_spawn(
        argv[0],
        list(argv),
        env,
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(log_file), flags, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ],
        setsid=True,
    )
    pid_file.write_text(str(pid))
    return pid


def stop_pid(pid: int, timeout_s: float = 30.0) -> None:
    """SIGTERM, wait for a clean shutdown, SIGKILL only past ``timeout_s``."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def wait_until(check: Callable[[], bool], timeout_s: float, what: str, log: Path | None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    tail = log_tail(log) if log is not None else ""
    raise StackError(f"{what} did not become ready within {timeout_s:.0f}s. Log tail:\n{tail}")


def log_tail(log: Path, lines: int = 20) -> str:
    """The last lines of a server's log, for the error that says it did not start."""
    if not log.exists():
        return f"({log} does not exist)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
