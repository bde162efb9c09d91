"""One corpus deployment: fresh topics and database, a signing key, the real workers.

Every worker is its own ``kernel run NAME`` process and the API is ``kernel
api``, as an operator runs them; :meth:`Deployment.deaths` reports any that
exited (with its exit code and the tail of its log). :meth:`Deployment.close`
stops them all (SIGTERM, then SIGKILL) and drops the database, so a failing
run leaks nothing.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg
from confluent_kafka import KafkaError, Message
from confluent_kafka import Producer as RawProducer

from ops.bootstrap import Kernel
from ops.config import Settings
from projections.migrate import migrate
from schemas.positions import LogPosition
from streams.chain.keys import generate_key, load_signer, signers_document
from tests.e2e.conftest import settings_env

__all__ = ["KERNEL", "WORKERS", "Death", "Deployment"]

KERNEL = str(Path(sys.executable).with_name("kernel"))
WORKERS = ("signer", "checkpointer", "audit-projector", "sentinel", "sentinel-projector")


@dataclass(frozen=True)
class Death:
    worker: str
    returncode: int
    log_tail: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Deployment:
    def __init__(self, base: Settings, work_dir: Path) -> None:
        self.work_dir = work_dir
        work_dir.mkdir(parents=True, exist_ok=True)
        self._admin_url = base.database_url
        self.db_name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self._admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.db_name}"')
        try:
            self._setup(base, work_dir)
        except BaseException:
            self._drop_database()
            raise

    def _setup(self, base: Settings, work_dir: Path) -> None:
        url = self._admin_url.rsplit("/", 1)[0] + "/" + self.db_name
        key = generate_key(work_dir / "keys", "corpus-signer")
        self.settings = replace(
            base,
            topic_prefix=f"t{uuid.uuid4().hex[:12]}.",
            postgres_url=url,
            signing_key=key,
            signer_id="corpus-signer",
            checkpoint_every=5,
            state_dir=work_dir,
        )
        self.kernel = Kernel(self.settings)
        self.kernel.topic_admin().ensure()
        migrate(url)
        signer = load_signer(key)
        self.signers = work_dir / "signers.json"
        self.signers.write_text(
            json.dumps(signers_document([(signer.signer_id, signer.public_key)]))
        )
        self.env = settings_env(self.settings)
        self.env.update(
            KERNEL_SIGNING_KEY=str(key),
            KERNEL_SIGNER_ID="corpus-signer",
            KERNEL_METRICS_PORT="0",
            KERNEL_CHECKPOINT_EVERY="5",
        )
        self.api_port = _free_port()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.raw = RawProducer(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap,
                "compression.type": "lz4",  # the broker sees a small batch; the record is big
                "message.max.bytes": 8_000_000,
                "acks": "all",
                "enable.idempotence": True,
            }
        )

    # -- processes -----------------------------------------------------------
    def _log(self, name: str) -> Path:
        return self.work_dir / f"{name}.log"

    def start(self) -> None:
        for name in WORKERS:
            self._spawn(name, [KERNEL, "run", name])
        self._spawn("api", [KERNEL, "api", "--port", str(self.api_port)])
        self._wait_api()

    def _spawn(self, name: str, argv: list[str]) -> None:
        with self._log(name).open("ab") as log:
            self.procs[name] = subprocess.Popen(
                argv, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def _wait_api(self) -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.procs["api"].poll() is not None:
                return  # reported by deaths()
            with contextlib.suppress(OSError):
                conn = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=2)
                try:
                    conn.request("GET", "/health")
                    if conn.getresponse().status == 200:
                        return
                finally:
                    conn.close()
            time.sleep(0.2)
        raise AssertionError(f"kernel api did not come up:\n{self.tail('api')}")

    def tail(self, name: str, chars: int = 1500) -> str:
        try:
            return self._log(name).read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def deaths(self) -> list[Death]:
        return [
            Death(name, proc.returncode, self.tail(name))
            for name, proc in self.procs.items()
            if proc.poll() is not None
        ]

    # -- raw Kafka ---------------------------------------------------------------
    def produce_raw(
        self, topic: str, values: tuple[bytes | None, ...], key: bytes | None, partition: int
    ) -> list[LogPosition]:
        results: list[LogPosition | str | None] = [None] * len(values)

        def done(i: int):  # type: ignore[no-untyped-def]
            def cb(err: KafkaError | None, msg: Message) -> None:
                results[i] = (
                    err.str() if err else LogPosition(msg.topic(), msg.partition(), msg.offset())
                )

            return cb

        for i, value in enumerate(values):
            self.raw.produce(
                self.settings.topic_prefix + topic,
                value,
                key,
                partition=partition,
                on_delivery=done(i),
            )
        self.raw.flush(60)
        bad = [r for r in results if not isinstance(r, LogPosition)]
        if bad:  # the harness's own failure, not Kernel's
            raise RuntimeError(f"raw produce to {topic} failed: {bad}")
        return [r for r in results if isinstance(r, LogPosition)]

    # -- CLI -------------------------------------------------------------------------
    def cli(
        self, *args: str, input_bytes: bytes | None = None, timeout: float = 180
    ) -> tuple[int, str, str]:
        proc = subprocess.run(
            [KERNEL, *args],
            input=input_bytes,
            capture_output=True,
            env=self.env,
            timeout=timeout,
            check=False,
            cwd=self.work_dir,
        )
        return (
            proc.returncode,
            proc.stdout.decode(errors="replace"),
            proc.stderr.decode(errors="replace"),
        )

    # -- teardown ------------------------------------------------------------------------
    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.raw.flush(5)
        self._drop_database()

    def _drop_database(self) -> None:
        with psycopg.connect(self._admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
