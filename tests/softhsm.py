"""A real SoftHSM2 token for the tests: one per test session, in its own directory.

SoftHSM2 reads ``SOFTHSM2_CONF`` when the module is first initialised in a
process, so the session fixture points it at a configuration whose token
directory is the session's temporary directory (never the machine's
/var/lib/softhsm), and subprocesses get the same variable from ``env``. Tests
use uuid key labels inside the one token, so they never see each other's keys.
A machine without softhsm2 fails these tests with what to install: CI installs
it (ops/install.sh), and a signer backend that is skipped is never tested.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
UTIL = "softhsm2-util"


@dataclass(frozen=True)
class SoftHsmToken:
    module: str
    label: str
    pin: str
    conf: Path

    def env(self, key_label: str | None = None, **extra: str) -> dict[str, str]:
        """What configures Kernel's signer on this token (for a subprocess or from_env)."""
        env = {
            "SOFTHSM2_CONF": str(self.conf),
            "KERNEL_SIGNER_BACKEND": "pkcs11",
            "KERNEL_PKCS11_MODULE": self.module,
            "KERNEL_PKCS11_TOKEN_LABEL": self.label,
            "KERNEL_PKCS11_PIN": self.pin,
        }
        if key_label is not None:
            env["KERNEL_PKCS11_KEY_LABEL"] = key_label
        env.update(extra)
        return env


def init_token(directory: Path, label: str = "kernel-test") -> SoftHsmToken:
    if shutil.which(UTIL) is None or not Path(MODULE).exists():
        pytest.fail(
            f"SoftHSM2 is not installed ({UTIL}, {MODULE}): the PKCS#11 signer is tested "
            f"against it; install it with ops/install.sh (apt-get install softhsm2)",
            pytrace=False,
        )
    tokens = directory / "tokens"
    tokens.mkdir(parents=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
        "slots.removable = false\n"
    )
    pin = secrets.token_hex(8)
    subprocess.run(
        [UTIL, "--init-token", "--free", "--label", label, "--pin", pin,
         "--so-pin", secrets.token_hex(8)],
        env={**os.environ, "SOFTHSM2_CONF": str(conf)},
        check=True,
        capture_output=True,
    )  # fmt: skip
    return SoftHsmToken(MODULE, label, pin, conf)


def key_label() -> str:
    return f"k-{uuid.uuid4().hex[:12]}"
