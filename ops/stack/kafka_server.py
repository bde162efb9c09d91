"""A single-node Apache Kafka 4.x in KRaft mode (broker + controller in one JVM).

The jars come from Maven Central: ``ops/kafka/pom.xml`` names
``org.apache.kafka:kafka_2.13`` and Maven copies it and its runtime
dependencies once into ``<state>/cache``. ``KAFKA_HOME`` (an unpacked Apache
Kafka distribution) replaces that download.

PLAINTEXT by default; ``secure=True`` runs it with one SASL_SSL listener,
SCRAM users and the StandardAuthorizer (:mod:`ops.stack.kafka_security`).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ops.stack.errors import MissingToolError, StackError
from ops.stack.kafka_security import BrokerSecurity
from ops.stack.processes import (
    log_tail,
    pid_alive,
    port_open,
    read_pid,
    spawn,
    stop_pid,
    wait_until,
)

__all__ = ["KafkaServer"]

_JAVA_HINT = "install a Java 17+ runtime, e.g. `apt-get install openjdk-17-jre-headless`"
_MVN_HINT = "install Maven (`apt-get install maven`) or set KAFKA_HOME to an unpacked Kafka"


def _kafka_version(pom: str) -> str:
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", pom)
    if not match:
        raise StackError("ops/kafka/pom.xml does not declare <kafka.version>")
    return match.group(1)


@dataclass
class KafkaServer:
    """Owns ``<state>/kafka``: server.properties, data, log and pid file."""

    state_dir: Path
    port: int
    kafka_home: Path | None = None
    heap: str = "768m"
    secure: bool = False
    # SCRAM users of the secured broker; the first is its admin (a super user).
    principals: tuple[str, ...] = ()
    name: str = "kafka"  # the home directory under the state dir
    # The client compiler only (as KERNEL_FAST_JVM=1): starts in half the time, for
    # brokers that live as long as a test module.
    quick_jvm: bool = False

    @property
    def home(self) -> Path:
        return self.state_dir / self.name

    @property
    def security(self) -> BrokerSecurity | None:
        if not self.secure:
            return None
        if not self.principals:
            raise StackError("a secured broker needs at least its admin principal")
        return BrokerSecurity(self.home, self.principals, super_users=self.principals[:1])

    def client_security(
        self, principal: str | None = None, *, password: bool = True
    ) -> dict[str, str]:
        """librdkafka settings to reach this broker as ``principal`` (default: its admin)."""
        sec = self.security
        if sec is None:
            return {}
        return sec.client(principal or self.principals[0], password=password)

    def password_file(self, principal: str | None = None) -> Path:
        """Where the secured broker keeps ``principal``'s password (default: its admin's)."""
        sec = self.security
        if sec is None:
            raise StackError(f"the broker in {self.home} is not secured: it has no passwords")
        return sec.password_file(principal or self.principals[0])

    @property
    def _listener(self) -> str:
        return "SASL_SSL" if self.secure else "PLAINTEXT"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.home / "kafka.log"

    @property
    def _pid_file(self) -> Path:
        return self.home / "kafka.pid"

    def pid(self) -> int | None:
        pid = read_pid(self._pid_file)
        return pid if pid_alive(pid) else None

    def running(self) -> bool:
        return self.pid() is not None and port_open("127.0.0.1", self.port)

    # -- installation -----------------------------------------------------
    def classpath(self) -> str:
        if self.kafka_home is not None:
            libs = self.kafka_home / "libs"
            if not libs.is_dir():
                raise StackError(f"KAFKA_HOME={self.kafka_home} has no libs/ directory")
            return f"{libs}/*"
        pom = resources.files("ops").joinpath("kafka/pom.xml").read_text()
        libs = self.state_dir / "cache" / f"kafka-{_kafka_version(pom)}" / "libs"
        if not (libs / ".complete").exists():
            self._resolve(pom, libs)
        return f"{libs}/*"

    def _resolve(self, pom: str, libs: Path) -> None:
        mvn = shutil.which("mvn")
        if mvn is None:
            raise MissingToolError(
                f"Maven is needed to fetch Kafka from Maven Central: {_MVN_HINT}"
            )
        work = libs.parent
        work.mkdir(parents=True, exist_ok=True)
        (work / "pom.xml").write_text(pom)
        argv = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(work / "pom.xml"),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={libs}",
            f"-Dmaven.repo.local={self.state_dir / 'cache' / 'm2'}",
        ]
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise StackError(f"Maven could not resolve Kafka:\n{done.stdout[-3000:]}{done.stderr}")
        (libs / ".complete").write_text("ok\n")

    def _java(self) -> str:
        java = shutil.which("java")
        if java is None:
            raise MissingToolError(f"Java was not found: {_JAVA_HINT}")
        return java

    # -- lifecycle --------------------------------------------------------
    def _write_config(self) -> Path:
        data = self.home / "data"
        props = self.home / "server.properties"
        ctrl = self.port + 1
        sec = self.security
        if sec is None:
            listeners = [
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{ctrl}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name=PLAINTEXT",
            ]
        else:
            listeners = sec.server_properties(self.port, ctrl)
        props.touch(mode=0o600)  # secured: it holds the keystore and broker passwords
        props.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{ctrl}",
                    "controller.listener.names=CONTROLLER",
                    *listeners,
                    f"log.dirs={data}",
                    "num.partitions=3",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=10",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "transaction.state.log.num.partitions=10",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                    # Never expire or compact by default; topics set their own.
                    "log.retention.hours=-1",
                    "transaction.partition.verification.enable=true",
                    # A dead instance's open transaction blocks read_committed readers of
                    # its partitions (and the offsets its successor needs) until the
                    # coordinator aborts it: look for expired ones every second, not
                    # every 10 s (the default), so a takeover waits for the
                    # transaction timeout only (ADR 0009).
                    "transaction.abort.timed.out.transaction.cleanup.interval.ms=1000",
                    "",
                ]
            )
        )
        log4j = self.home / "log4j2.properties"
        log4j.write_text(
            "rootLogger.level=WARN\nrootLogger.appenderRef.out.ref=OUT\n"
            "appender.out.type=Console\nappender.out.name=OUT\n"
            "appender.out.layout.type=PatternLayout\n"
            "appender.out.layout.pattern=[%d] %p %m (%c)%n\n"
            "logger.kafka.name=kafka.server.KafkaRaftServer\nlogger.kafka.level=INFO\n"
        )
        return props

    def start(self, timeout_s: float = 90.0) -> bool:
        """Start unless running; returns False when an existing broker was reused."""
        self._check_listener()  # a running broker of the other mode is not "reused"
        if self.running():
            return False
        for port in (self.port, self.port + 1):  # the broker's and its controller's
            if port_open("127.0.0.1", port):
                raise StackError(
                    f"port {port} is taken by a process that is not this stack's Kafka; "
                    "set KERNEL_KAFKA_PORT to a free port (the controller listens on +1)"
                )
        self.home.mkdir(parents=True, exist_ok=True)
        java, cp = self._java(), self.classpath()
        if self.security is not None:
            self.security.prepare()
        props = self._write_config()
        env = dict(os.environ)
        env["KAFKA_LOG4J_OPTS"] = ""
        if not (self.home / "data" / "meta.properties").exists():
            cluster = _cluster_id()
            fmt = [
                java,
                "-XX:TieredStopAtLevel=1",  # a JVM that runs for seconds: compile little
                "-cp",
                cp,
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster,
                "-c",
                str(props),
            ]
            if self.security is not None:
                fmt += self.security.format_args()
            done = subprocess.run(fmt, capture_output=True, text=True, check=False, env=env)
            if done.returncode != 0:
                raise StackError(f"kafka-storage format failed:\n{done.stdout}{done.stderr}")
            (self.home / "listener").write_text(self._listener + "\n")
        argv = [
            java,
            f"-Xmx{self.heap}",
            f"-Xms{self.heap}",
            "-XX:+UseG1GC",
            "-XX:TieredStopAtLevel=1"
            if self.quick_jvm or os.environ.get("KERNEL_FAST_JVM")
            else "-server",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
            "-Djava.awt.headless=true",
            "-cp",
            cp,
            "kafka.Kafka",
            str(props),
        ]
        spawn(argv, self.log_file, self._pid_file, env)
        wait_until(self._answers, timeout_s, "Kafka", self.log_file)
        return True

    def _check_listener(self) -> None:
        """A broker formatted in one mode is not restarted in the other: its SCRAM
        users are made at format time, and a plaintext log must not silently gain
        (or lose) its authorizer."""
        if not (self.home / "data" / "meta.properties").exists():
            return
        marker = self.home / "listener"
        formatted = marker.read_text().strip() if marker.exists() else "PLAINTEXT"
        if formatted != self._listener:
            raise StackError(
                f"the broker in {self.home} was formatted {formatted}, not {self._listener}: "
                f"start it as it was (KERNEL_KAFKA_SECURITY), or stop it and move {self.home} "
                "away to format a new one"
            )

    def _answers(self) -> bool:
        if self.pid() is None:
            raise StackError(
                f"Kafka exited during start; see {self.log_file}. Log tail:\n"
                + log_tail(self.log_file)
            )
        if not port_open("127.0.0.1", self.port):
            return False
        from streams.kafka.clients import KafkaClients  # noqa: PLC0415 - only when starting
        from streams.kafka.offsets import KafkaOffsets  # noqa: PLC0415

        kafka = KafkaClients(self.bootstrap, self.client_security())
        try:
            return KafkaOffsets(kafka, timeout_s=2).metadata().brokers > 0
        except Exception:
            return False

    def stop(self) -> bool:
        pid = self.pid()
        if pid is None:
            return False
        stop_pid(pid, timeout_s=60)
        self._pid_file.unlink(missing_ok=True)
        return True


def _cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64, never starting with "-"
    (the format tool would read it as an option; Kafka's own ``random-uuid`` also
    draws again then). One id in 64 started so, and the stack failed to start."""
    while True:
        cluster = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster.startswith("-"):
            return cluster
