"""A real Confluent-compatible schema registry for the tests: Apicurio Registry.

Apicurio's ``ccompat`` API is the Confluent schema registry REST API. The
registry comes from Maven Central like the test Kafka does
(``ops/stack/kafka_server.py``): Maven unpacks the distribution once into the
test state directory's cache (``<state>/cache``, the same Maven repository as
Kafka's), so a clean machine with Java and Maven (``ops/install.sh``) needs
nothing else. Why Apicurio 2.6 and not Karapace or Apicurio 3:
docs/decisions/0012-schema-registry-client.md.

The 2.6 distribution is the in-memory (H2) registry: a fresh, empty registry
each start, which is what a test wants.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

__all__ = ["APICURIO_VERSION", "apicurio_registry", "free_port"]

APICURIO_VERSION = "2.6.13.Final"
_ARTIFACT = f"io.apicurio:apicurio-registry-app:{APICURIO_VERSION}:tar.gz:all"
_RUNNER = f"apicurio-registry-app-{APICURIO_VERSION}-runner.jar"
CCOMPAT = "/apis/ccompat/v7"  # the Confluent-compatible API's root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def install(cache: Path) -> Path:
    """The unpacked distribution under ``cache``, fetched by Maven the first time."""
    home = cache / f"apicurio-registry-{APICURIO_VERSION}"
    if (home / ".complete").exists():
        return home
    mvn = shutil.which("mvn")
    if mvn is None:
        raise RuntimeError("Maven is needed to fetch Apicurio Registry: `make install`")
    shutil.rmtree(home, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    # Without a project Maven writes its markers under the working directory.
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        done = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "dependency:unpack",
                f"-Dartifact={_ARTIFACT}",
                f"-DoutputDirectory={home}",
                f"-Dmaven.repo.local={cache / 'm2'}",
            ],
            cwd=scratch,
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0 or not (home / _RUNNER).exists():
        output = f"{done.stdout[-3000:]}{done.stderr}"
        raise RuntimeError(f"Maven could not fetch {_ARTIFACT}:\n{output}")
    (home / ".complete").write_text("ok\n")
    return home


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def apicurio_registry(state_dir: Path, *, start_timeout_s: float = 90.0) -> Iterator[str]:
    """A running registry on a free localhost port; yields its Confluent API URL.

    The JVM is this process's child and is killed on exit, whatever happens.
    """
    java = shutil.which("java")
    if java is None:
        raise RuntimeError("Java 17+ is needed to run Apicurio Registry: `make install`")
    home = install(state_dir / "cache")
    port = free_port()
    log = state_dir / "apicurio" / f"registry-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        java,
        "-Xmx256m",
        # C1 only and the serial collector: starts in ~7 s here instead of ~10.
        "-XX:TieredStopAtLevel=1",
        "-XX:+UseSerialGC",
        f"-Dquarkus.http.port={port}",
        "-Dquarkus.http.host=127.0.0.1",
        "-jar",
        str(home / _RUNNER),
    ]
    url = f"http://127.0.0.1:{port}{CCOMPAT}"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent)
    try:
        deadline = time.monotonic() + start_timeout_s
        while not _answers(f"{url}/subjects"):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"Apicurio Registry did not start on port {port}:\n{tail}")
            time.sleep(0.2)
        yield url
    finally:
        proc.kill()
        proc.wait(timeout=30)
