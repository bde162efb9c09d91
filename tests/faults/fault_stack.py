"""A Kafka + Postgres stack of the suite's own, which it may kill.

The shared test stack (29092/25432) is never touched: this one lives under
``/var/tmp/kernel-faults-<uuid>`` on its own ports (KERNEL_FAULTS_KAFKA_PORT,
KERNEL_FAULTS_PG_PORT; 28092/28432 by default: below the kernel's ephemeral port range, so no
client socket or port-0 server of another test can hold them) and is torn down at the end.
Kafka's jars are reused from an existing stack's Maven cache when one is found
(read only), so a run needs no download.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
import uuid
from pathlib import Path

from ops.config import Settings, default_state_dir
from ops.stack import LocalStack
from ops.stack.processes import pid_alive
from tests import identity

__all__ = ["FaultStack", "find_kafka_home"]


def find_kafka_home() -> Path | None:
    """An unpacked set of Kafka jars (``<dir>/libs``) already on this machine."""
    if os.environ.get("KAFKA_HOME"):
        return Path(os.environ["KAFKA_HOME"])
    base = default_state_dir()
    states = [base.with_name(base.name + "-test"), base]
    if os.environ.get("KERNEL_TEST_STATE_DIR"):  # CI's fresh test stack (.ci/run)
        states.insert(0, Path(os.environ["KERNEL_TEST_STATE_DIR"]))
    for state in states:
        for libs in sorted((state / "cache").glob("kafka-*/libs")):
            if (libs / ".complete").exists():
                return libs.parent
    return None


class FaultStack:
    """A LocalStack plus the faults: broker kill -9 / graceful stop, Postgres stop."""

    def __init__(self, kafka_port: int = 28092, pg_port: int = 28432) -> None:
        self.state_dir = Path(f"/var/tmp/kernel-faults-{uuid.uuid4().hex[:12]}")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KERNEL_", "POSTGRES_URL"))}
        env.update(
            KERNEL_STATE_DIR=str(self.state_dir),
            KERNEL_KAFKA_PORT=str(kafka_port),
            KERNEL_PG_PORT=str(pg_port),
            KERNEL_TOKENS_FILE=str(identity.TOKENS_FILE),
        )
        home = find_kafka_home()
        if home is not None:
            env["KAFKA_HOME"] = str(home)
        self.settings = Settings.from_env(env)
        self.local = LocalStack(self.settings, durable=False)

    def up(self) -> None:
        self.local.up()

    def down(self) -> None:
        with contextlib.suppress(Exception):
            self.local.down()
        pid = self.local.kafka.pid()
        if pid is not None:  # stop() gave up: do not leave a JVM behind
            self._kill9(pid)
        shutil.rmtree(self.state_dir, ignore_errors=True)

    # -- broker ---------------------------------------------------------------
    def kill9_broker(self) -> None:
        pid = self.local.kafka.pid()
        if pid is not None:
            self._kill9(pid)

    def stop_broker(self) -> None:
        """Graceful: SIGTERM and wait for the controlled shutdown."""
        self.local.kafka.stop()

    def start_broker(self) -> None:
        self.local.kafka.start(timeout_s=180)

    @staticmethod
    def _kill9(pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # the broker is our child: reap it
            if not pid_alive(pid):
                return
            time.sleep(0.05)

    # -- postgres -------------------------------------------------------------
    def stop_postgres(self) -> None:
        self.local.postgres.stop()

    def start_postgres(self) -> None:
        self.local.postgres.start(timeout_s=120)
