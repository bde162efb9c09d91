"""compose.yaml stays consistent with the CLI and the configuration."""

from __future__ import annotations

from pathlib import Path

import yaml

from ops.cli import build_parser
from ops.config import ENV_VARS

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, object]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())  # type: ignore[no-any-return]


def _kernel_services() -> dict[str, dict[str, object]]:
    services: dict[str, dict[str, object]] = _compose()["services"]  # type: ignore[assignment]
    return {name: s for name, s in services.items() if "build" in s}


def test_every_kernel_service_command_parses() -> None:
    parser = build_parser()
    services = _kernel_services()
    assert services, "compose.yaml builds no Kernel service"
    for name, service in services.items():
        command = service["command"]
        assert isinstance(command, list), name
        args = parser.parse_args([str(c) for c in command])  # SystemExit on an unknown command
        assert callable(args.func), name


def test_every_kernel_variable_exists() -> None:
    for name, service in _kernel_services().items():
        env = service.get("environment", {})
        assert isinstance(env, dict)
        for var in env:
            assert var in ENV_VARS, f"{name} sets {var}, which Kernel does not read"


def test_infrastructure_has_health_checks() -> None:
    services: dict[str, dict[str, object]] = _compose()["services"]  # type: ignore[assignment]
    for name in ("kafka", "postgres"):
        assert "healthcheck" in services[name], name
    for name, service in _kernel_services().items():
        deps = service.get("depends_on", {})
        assert isinstance(deps, dict)
        conditions = {d.get("condition") for d in deps.values()}
        assert conditions <= {"service_healthy", "service_completed_successfully"}, name


def test_dockerfile_installs_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("schemas", "streams", "projections", "replay", "ops"):
        assert f"COPY {package} {package}" in dockerfile
