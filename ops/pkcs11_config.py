"""The PKCS#11 token of the chain signer, from :class:`~ops.config.Settings`.

The PIN comes from ``KERNEL_PKCS11_PIN_FILE`` (preferred: a secret file mounted
for the process) or ``KERNEL_PKCS11_PIN``; it is read here, when a signer is
built, and goes nowhere but the token's ``C_Login``.
"""

from __future__ import annotations

from ops.config import Settings
from schemas.errors import ConfigError
from streams.chain.pkcs11_signer import TokenConfig

__all__ = ["token_config"]


def token_config(settings: Settings) -> TokenConfig:
    if not settings.pkcs11_module:
        raise ConfigError(
            "KERNEL_SIGNER_BACKEND=pkcs11 needs KERNEL_PKCS11_MODULE, the token's PKCS#11 "
            "module (SoftHSM2: /usr/lib/softhsm/libsofthsm2.so)"
        )
    return TokenConfig(
        module=settings.pkcs11_module,
        token_label=settings.pkcs11_token_label,
        key_label=settings.pkcs11_key_label or settings.signer_id,
        pin=_pin(settings),
    )


def _pin(settings: Settings) -> str:
    if settings.pkcs11_pin_file is not None:
        path = settings.pkcs11_pin_file
        try:
            pin = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"cannot read KERNEL_PKCS11_PIN_FILE {path}: {exc.strerror}") from exc
        if not pin:
            raise ConfigError(f"KERNEL_PKCS11_PIN_FILE {path} is empty")
        return pin
    if settings.pkcs11_pin:
        return settings.pkcs11_pin
    raise ConfigError(
        "KERNEL_SIGNER_BACKEND=pkcs11 needs the token's user PIN: "
        "KERNEL_PKCS11_PIN_FILE (a file holding it) or KERNEL_PKCS11_PIN"
    )
