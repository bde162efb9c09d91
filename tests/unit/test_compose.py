"""compose.yaml stays consistent with the CLI and the configuration."""

from __future__ import annotations

from pathlib import Path

import yaml

from ops.cli import build_parser
from ops.config import ENV_VARS
from ops.stack.postgres_roles import LOCAL_ROLES

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


# The Postgres role each Kernel service needs (docs/decisions/0014): its variable
# and the login it must name. Services not listed use no database.
DATABASE_LOGINS = {
    "kernel-migrate": ("POSTGRES_URL", "kernel_owner"),
    "kernel-audit-projector": ("KERNEL_DATABASE_URL_AUDIT_PROJECTOR", "kernel_projector"),
    "kernel-sentinel-projector": (
        "KERNEL_DATABASE_URL_SENTINEL_PROJECTOR",
        "kernel_sentinel_projector",
    ),
    "kernel-auditor": ("KERNEL_DATABASE_URL_AUDITOR", "kernel_auditor"),
    "kernel-api": ("KERNEL_DATABASE_URL_API", "kernel_api"),
    "kernel-lag-exporter": ("KERNEL_DATABASE_URL_API", "kernel_api"),
}


def test_each_service_logs_in_as_its_own_role_never_the_superuser() -> None:
    for name, service in _kernel_services().items():
        env = service.get("environment", {})
        assert isinstance(env, dict)
        urls = {k: str(v) for k, v in env.items() if "URL" in k and "postgresql" in str(v)}
        expected = DATABASE_LOGINS.get(name)
        if expected is None:
            assert not urls, f"{name} needs no database but is given {sorted(urls)}"
            continue
        var, login = expected
        assert set(urls) == {var}, f"{name}: {sorted(urls)}, expected only {var}"
        assert urls[var].startswith(f"postgresql://{login}:${{"), f"{name}: {urls[var]}"
        assert "POSTGRES_PASSWORD" not in str(env), f"{name} sees the superuser's password"


def test_compose_creates_the_logins_of_the_local_roles() -> None:
    script = (ROOT / "ops" / "compose" / "postgres-roles.sh").read_text()
    for role in LOCAL_ROLES:
        assert f"CREATE ROLE {role.name} LOGIN {role.attributes} PASSWORD :'" in script, role.name
    postgres = _compose()["services"]["postgres"]  # type: ignore[index]
    mounted = " ".join(postgres["volumes"])
    assert "ops/compose/postgres-roles.sh:/docker-entrypoint-initdb.d/" in mounted
    for var in ("OWNER", "API", "PROJECTOR", "SENTINEL_PROJECTOR", "AUDITOR"):
        assert f"KERNEL_PG_{var}_PASSWORD" in postgres["environment"], var
        assert f'"$KERNEL_PG_{var}_PASSWORD"' in script, var
