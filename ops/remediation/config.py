"""KERNEL_REMEDIATION_ACTIONS, read and validated, and the webhooks' secrets."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import orjson

from streams.remediation.actions import ActionSpec, parse_actions
from streams.remediation.errors import ActionConfigError

__all__ = ["load_actions", "webhook_secret"]


def load_actions(path: Path | None) -> dict[str, ActionSpec]:
    """The registered actions; none when KERNEL_REMEDIATION_ACTIONS is unset."""
    if path is None:
        return {}
    try:
        data = orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ActionConfigError(
            f"KERNEL_REMEDIATION_ACTIONS={path}: cannot read: {exc.strerror or exc}"
        ) from exc
    except orjson.JSONDecodeError as exc:
        raise ActionConfigError(f"KERNEL_REMEDIATION_ACTIONS={path}: not JSON: {exc}") from exc
    return parse_actions(data, where=f"KERNEL_REMEDIATION_ACTIONS={path}")


def webhook_secret(spec: ActionSpec, env: Mapping[str, str] | None = None) -> bytes:
    """The HMAC secret of a webhook, from its secretFile or its secretEnv variable."""
    e = os.environ if env is None else env
    at = f"action {spec.name!r}"
    if spec.secret_env is not None:
        value = e.get(spec.secret_env, "")
        if not value:
            raise ActionConfigError(f"{at}: secretEnv {spec.secret_env} is unset or empty")
        return value.encode()
    assert spec.secret_file is not None
    try:
        secret = Path(spec.secret_file).read_bytes().strip()
    except OSError as exc:
        raise ActionConfigError(
            f"{at}: cannot read secretFile {spec.secret_file}: {exc.strerror or exc}"
        ) from exc
    if not secret:
        raise ActionConfigError(f"{at}: secretFile {spec.secret_file} is empty")
    return secret
