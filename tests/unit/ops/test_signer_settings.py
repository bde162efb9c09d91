"""KERNEL_SIGNER_BACKEND and the PKCS#11 settings: parsed strictly, the PIN kept out of sight."""

from __future__ import annotations

from pathlib import Path

import pytest

from ops.bootstrap import Kernel
from ops.config import Settings
from ops.pkcs11_config import token_config
from schemas.errors import ConfigError

BASE = {"KERNEL_STATE_DIR": "/nonexistent/kernel-state"}


def test_the_default_backend_is_the_key_file() -> None:
    settings = Settings.from_env(BASE)
    assert settings.signer_backend == "file"


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ConfigError, match="KERNEL_SIGNER_BACKEND must be file or pkcs11"):
        Settings.from_env({**BASE, "KERNEL_SIGNER_BACKEND": "kms"})


def test_the_pin_is_never_in_a_repr_of_the_settings_or_the_token_config() -> None:
    pin = "s3cret-pin-4711"
    settings = Settings.from_env(
        {**BASE, "KERNEL_SIGNER_BACKEND": "pkcs11", "KERNEL_PKCS11_MODULE": "/x.so",
         "KERNEL_PKCS11_PIN": pin, "KERNEL_SIGNER_ID": "hsm-1"}
    )  # fmt: skip
    config = token_config(settings)
    assert (config.module, config.token_label, config.key_label, config.pin) == (
        "/x.so", "kernel", "hsm-1", pin,
    )  # fmt: skip
    assert pin not in repr(settings) and pin not in repr(config)


def test_token_config_says_what_is_missing() -> None:
    pkcs11 = {**BASE, "KERNEL_SIGNER_BACKEND": "pkcs11"}
    with pytest.raises(ConfigError, match="needs KERNEL_PKCS11_MODULE"):
        token_config(Settings.from_env(pkcs11))
    with pytest.raises(ConfigError, match=r"KERNEL_PKCS11_PIN_FILE .* or KERNEL_PKCS11_PIN"):
        token_config(Settings.from_env({**pkcs11, "KERNEL_PKCS11_MODULE": "/x.so"}))
    missing = {**pkcs11, "KERNEL_PKCS11_MODULE": "/x.so", "KERNEL_PKCS11_PIN_FILE": "/nonexistent"}
    with pytest.raises(ConfigError, match="cannot read KERNEL_PKCS11_PIN_FILE /nonexistent"):
        token_config(Settings.from_env(missing))


def test_production_refuses_the_key_file_and_says_how_to_configure_pkcs11(
    tmp_path: Path,
) -> None:
    settings = Settings.from_env({"KERNEL_STATE_DIR": str(tmp_path), "KERNEL_ENV": "production"})
    with pytest.raises(ConfigError) as caught:
        Kernel(settings).signer()
    message = str(caught.value)
    assert message.startswith("KERNEL_ENV=production refuses local signing keys")
    for hint in ("KERNEL_SIGNER_BACKEND=pkcs11", "KERNEL_PKCS11_MODULE", "keys generate --pkcs11"):
        assert hint in message
