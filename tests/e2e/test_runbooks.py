"""Every command in docs/runbooks/ runs on a deployment with data, with its declared
exit code, and prints what it must about that data.

The convention is documented at the top of docs/runbooks/README.md: ``$ ``
lines in ``console`` blocks, run in order per page in one working directory;
exit 0 unless the line ends with ``# exits N``. Each page starts on its own
deployment: a signing key, a policy, actions decided by the sentinel, chained,
checkpointed and projected by the workers, one junk record dead-lettered.
Every command line has an expectation in :data:`CHECKS` on what it prints
(audit-verify names every chain and its length, lag every worker's group, the
restore the rows it brought back, ...): a new command needs one.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Producer

from ops.bootstrap import Kernel
from projections.migrate import migrate
from streams.chain.keys import generate_key, key_path, load_signer
from tests.e2e.conftest import settings_env
from tests.integration.audit.test_dr_drill import _deploy as deploy_audited_actions

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "docs" / "runbooks"
PAGES = ("health-check-failure", "audit-integrity-alert", "key-compromise", "dr-restore")
BLOCK = re.compile(r"```console\n(.*?)```", re.S)
EXITS = re.compile(r"#\s*exits\s+(\d+)\b")
STEP = re.compile(r"^## \d+\. ", re.M)


@dataclass(frozen=True)
class Command:
    line: str
    expected: int


def commands(page: Path) -> list[Command]:
    found = []
    for block in BLOCK.findall(page.read_text()):
        for line in block.splitlines():
            if line.startswith("$ "):
                match = EXITS.search(line)
                found.append(Command(line[2:], int(match.group(1)) if match else 0))
    return found


def test_every_page_has_numbered_steps_and_kernel_commands() -> None:
    for name in PAGES:
        page = RUNBOOKS / f"{name}.md"
        assert len(STEP.findall(page.read_text())) >= 3, f"{page}: numbered steps (## 1. ...)"
        found = commands(page)
        assert found, f"{page} has no $ lines"
        for c in found:
            assert c.line.startswith("kernel "), f"{page}: {c.line!r} is not a kernel command"
    assert "# exits N" in (RUNBOOKS / "README.md").read_text()


def test_exit_comment_is_parsed() -> None:
    assert EXITS.search("kernel db status   # exits 1 while pending")
    assert not EXITS.search("kernel lag --json > lag.json")


@dataclass(frozen=True)
class Deployment:
    """What the runbooks' commands find: facts read back from Postgres and the keys."""

    prefix: str
    chains: dict[str, int]  # chain -> length in audit_events
    checkpoints: int  # rows of audit_checkpoints
    checks: int  # rows of policy_checks
    signer_id: str
    public_key: str
    restore_url: str

    @property
    def records(self) -> int:
        return sum(self.chains.values())


def deploy(kernel: Kernel, state: Path, restore_url: str) -> tuple[Kernel, Deployment]:
    """A deployment with data: a signing key, a policy, actions decided, chained,
    checkpointed and projected by the workers, and one junk record dead-lettered."""
    migrate(kernel.settings.database_url)
    kernel = Kernel(replace(kernel.settings, state_dir=state, checkpoint_every=5))
    generate_key(kernel.settings.keys_dir, kernel.settings.signer_id)
    producer = Producer({"bootstrap.servers": kernel.settings.kafka_bootstrap})
    producer.produce(kernel.names.actions, b"not an event", key=b"junk")
    assert producer.flush(30) == 0
    checks, _ = deploy_audited_actions(kernel)  # runs sentinel, signer, checkpointer, projectors
    signer = load_signer(key_path(kernel.settings.keys_dir, kernel.settings.signer_id))
    with psycopg.connect(kernel.settings.database_url) as conn:
        chains = dict(
            conn.execute("SELECT chain, count(*) FROM audit_events GROUP BY chain").fetchall()
        )
        (checkpoints,) = conn.execute("SELECT count(*) FROM audit_checkpoints").fetchone()  # type: ignore[misc]
    assert checkpoints > 0, "the checkpointer signed checkpoints"
    return kernel, Deployment(
        prefix=kernel.settings.topic_prefix,
        chains={str(c): int(n) for c, n in chains.items()},
        checkpoints=int(checkpoints),
        checks=checks,
        signer_id=signer.signer_id,
        public_key=base64.b64encode(signer.public_key).decode(),
        restore_url=restore_url,
    )


# -- what each command must print about the deployment's data -------------------

Check = Callable[[Deployment, str, Path], None]


def _doctor(d: Deployment, out: str, work: Path) -> None:
    assert re.search(r"^ok +lag +\d+ consumer group\(s\) under", out, re.M), out
    # the junk record, dead-lettered by the sentinel and by the signer: a warning, not a
    # failure (the count is of offsets: transaction markers included)
    assert re.search(
        r"^WARN +dead-letters +\d+ record\(s\) in " + re.escape(d.prefix) + "dlq", out, re.M
    ), out
    assert "FAIL" not in out and out.rstrip().endswith("kernel doctor: healthy"), out


def _lag(d: Deployment, out: str, work: Path) -> None:
    ours = [line for line in out.splitlines() if line.startswith(d.prefix)]
    groups = {line.split()[0] for line in ours}
    for worker in ("chain-signer", "chain-checkpointer", "sentinel"):
        assert d.prefix + worker in groups, out
    # every group caught up: lag 0, status OK
    assert ours and all(
        line.split()[-3:-1] == ["0", "0.0"] and line.endswith("OK") for line in ours
    ), out


def _signers_file(d: Deployment, out: str, work: Path) -> None:
    doc = json.loads((work / "signers.json").read_text())
    assert {"signerId": d.signer_id, "publicKey": d.public_key} in doc["signers"], doc


def _verify_lines(d: Deployment, out: str) -> None:
    for chain, length in d.chains.items():
        assert re.search(
            f"^chain {re.escape(chain)}: {length} records, head [0-9a-f]{{64}}, verified$",
            out,
            re.M,
        ), out
    assert f"total: {len(d.chains)} chains, {d.records} records, verified" in out, out


def _verify(d: Deployment, out: str, work: Path) -> None:
    _verify_lines(d, out)


def _verify_json(d: Deployment, out: str, work: Path) -> None:
    report = json.loads((work / "verify.json").read_text())
    assert report["verified"] is True and report["failures"] == [], report
    assert {c["chain"]: c["length"] for c in report["chains"]} == d.chains, report
    assert report["total"] == d.records


def _replay(d: Deployment, out: str, work: Path) -> None:
    assert f"audit: replayed {d.records} records, {d.checkpoints} checkpoints" in out, out
    for chain, n in d.chains.items():
        same = f"live {n} records, head (\\w+) / replay {n} records, head \\1: identical"
        assert re.search(f"chain {re.escape(chain)}: {same}", out), out
    assert "audit: identical" in out and "live left untouched" in out, out


def _backup(d: Deployment, out: str, work: Path) -> None:
    assert re.search(r"backup in backups/daily: \d+ bytes dumped, 3 projection\(s\)", out), out
    manifest = json.loads((work / "backups" / "daily" / "manifest.json").read_text())
    assert (work / "backups" / "daily" / "projections.dump").stat().st_size > 0
    assert manifest, manifest


def _pending(d: Deployment, out: str, work: Path) -> None:
    lines = out.splitlines()
    assert lines and all(line.split()[-1] == "pending" for line in lines), out


def _applied(d: Deployment, out: str, work: Path) -> None:
    lines = out.splitlines()
    assert lines and all(line.split()[-1] == "applied" for line in lines), out


def _restore(d: Deployment, out: str, work: Path) -> None:
    assert re.search(r"^restored \d+ table\(s\) into ", out, re.M), out
    for projection in ("audit", "policy_checks", "policy_registry"):
        assert re.search(f"^{projection}: \\d+ record\\(s\\) to replay", out, re.M), out
    with psycopg.connect(d.restore_url) as conn:
        (rows,) = conn.execute("SELECT count(*) FROM audit_events").fetchone()  # type: ignore[misc]
        (checks,) = conn.execute("SELECT count(*) FROM policy_checks").fetchone()  # type: ignore[misc]
    assert (rows, checks) == (d.records, d.checks)


def _migrated(d: Deployment, out: str, work: Path) -> None:
    assert re.search(r"^database is at version \d{4}$", out, re.M), out


def _status(d: Deployment, out: str, work: Path) -> None:
    assert re.search(r"^kafka +running ", out, re.M) and re.search(
        r"^postgres +running ", out, re.M
    ), out


def _topics(d: Deployment, out: str, work: Path) -> None:
    for topic in ("actions", "policies", "policy-checks", "audit.chain", "dlq"):
        assert re.search(f"^ok +{re.escape(d.prefix + topic)}$", out, re.M), out


def _dead_letters(d: Deployment, out: str, work: Path) -> None:
    letters = [json.loads(line) for line in out.splitlines()]
    assert len(letters) == 2, out
    text = json.dumps(letters)
    assert d.prefix + "actions" in text and "reason" in text, text


def _generate(d: Deployment, out: str, work: Path) -> None:
    assert "(signerId kernel-signer-2)" in out, out


def _export(d: Deployment, out: str, work: Path) -> None:
    ids = [s["signerId"] for s in json.loads(out)["signers"]]
    assert sorted(ids) == sorted([d.signer_id, "kernel-signer-2"]), ids


def _rotated(d: Deployment, out: str, work: Path) -> None:
    assert f"rotated {len(d.chains)} chain(s) from {d.signer_id!r} to 'kernel-signer-2'" in out
    for chain, n in d.chains.items():
        assert f"  {chain}: rotation link at seq {n}; kernel-signer-2 signs from seq {n + 1}" in out


def _windows(d: Deployment, work: Path) -> dict[str, dict[str, object]]:
    doc = json.loads((work / "signers.json").read_text())
    by_id = {e["signerId"]: e for e in doc["signers"]}
    rotated_at = {chain: n + 1 for chain, n in d.chains.items()}  # after each rotation link
    assert by_id[d.signer_id]["publicKey"] == d.public_key
    assert by_id[d.signer_id]["validUntil"] == rotated_at, by_id
    assert by_id["kernel-signer-2"]["validFrom"] == rotated_at, by_id
    return by_id


def _signers_from_log(d: Deployment, out: str, work: Path) -> None:
    assert "revokedFrom" not in _windows(d, work)[d.signer_id]


def _signers_revoked(d: Deployment, out: str, work: Path) -> None:
    assert _windows(d, work)[d.signer_id]["revokedFrom"] == {"*": 0}


def _replay_rotated(d: Deployment, out: str, work: Path) -> None:
    # the log now has one more link per chain than the projection: replayed, verified, swapped
    assert f"audit: replayed {d.records + len(d.chains)} records" in out, out
    assert "audit: swapped in" in out, out


def _revoked(d: Deployment, out: str, work: Path) -> None:
    assert f"revoked {d.signer_id!r} from *@0 (signed by 'kernel-signer-2'" in out, out


def _all_old_records(d: Deployment) -> set[tuple[str, int]]:
    return {(chain, seq) for chain, n in d.chains.items() for seq in range(n + 1)}


def _verify_revoked(d: Deployment, out: str, work: Path) -> None:
    report = json.loads((work / "verify-revoked.json").read_text())
    assert report["verified"] is False and report["failures"] == [], report
    assert {(f["chain"], f["seq"]) for f in report["flagged"]} == _all_old_records(d)
    assert all(
        f["reason"].startswith(f"signed by revoked key {d.signer_id!r}") for f in report["flagged"]
    )


def _replay_revoked(d: Deployment, out: str, work: Path) -> None:
    audit = json.loads((work / "replay.json").read_text())["projections"]["audit"]
    assert audit["verified"] is False and audit["swapped"] is False, audit
    assert {(f["chain"], f["seq"]) for f in audit["flagged"]} == _all_old_records(d)


CHECKS: dict[str, Check] = {
    "kernel status": _status,
    "kernel doctor": _doctor,
    "kernel lag": _lag,
    "kernel db status": _applied,
    "kernel db migrate": _migrated,
    "kernel topics ensure": _topics,
    "kernel tail dlq -n 5": _dead_letters,
    "kernel keys export-signers > signers.json": _signers_file,
    "kernel keys export-signers": _export,
    "kernel keys generate --signer-id kernel-signer-2": _generate,
    "kernel audit-verify --signers signers.json": _verify,
    "kernel audit-verify --signers signers.json --json > verify.json": _verify_json,
    "kernel replay audit --signers signers.json --verify-only": _replay,
    "kernel backup --out backups/daily": _backup,
    'kernel db status --database-url "$RESTORE_URL"': _pending,
    'kernel restore --from backups/daily --database-url "$RESTORE_URL"': _restore,
    'kernel db migrate --database-url "$RESTORE_URL"': _migrated,
    'kernel audit-verify --database-url "$RESTORE_URL" --signers signers.json': _verify,
    'kernel keys rotate --to kernel-signer-2 --reason "key compromise"': _rotated,
    "kernel keys export-signers --from-log > signers.json": _signers_from_log,
    "kernel replay audit --signers signers.json": _replay_rotated,
    'kernel keys revoke kernel-signer --from "*@0" --signed-by kernel-signer-2': _revoked,
    "kernel audit-verify --signers signers.json --json > verify-revoked.json": _verify_revoked,
    "kernel replay audit --signers signers.json --verify-only --json > replay.json": (
        _replay_revoked
    ),
}


def _check_for(c: Command, seen: dict[str, int]) -> Check:
    """The check of a command line (its ``# exits`` comment aside); the same line
    twice on a page may mean a different state (db status before/after migrate)."""
    line = c.line.split("#", 1)[0].strip()
    assert line in CHECKS, f"no expectation for `{line}`: add one to CHECKS"
    seen[line] = seen.get(line, 0) + 1
    if line == 'kernel db status --database-url "$RESTORE_URL"' and seen[line] > 1:
        return _applied
    if line == "kernel keys export-signers --from-log > signers.json" and seen[line] > 1:
        return _signers_revoked
    return CHECKS[line]


def test_every_runbook_command_has_an_expectation() -> None:
    for name in PAGES:
        seen: dict[str, int] = {}
        for c in commands(RUNBOOKS / f"{name}.md"):
            _check_for(c, seen)


@pytest.mark.parametrize("name", PAGES)
def test_runbook_commands_run(
    name: str, db_kernel: Kernel, second_database_url: str, tmp_path: Path
) -> None:
    kernel, deployment = deploy(db_kernel, tmp_path / "state", second_database_url)
    env = settings_env(kernel.settings)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env["RESTORE_URL"] = second_database_url
    workdir = tmp_path / "work"
    workdir.mkdir()
    seen: dict[str, int] = {}
    for c in commands(RUNBOOKS / f"{name}.md"):
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", c.line],
            capture_output=True,
            text=True,
            env=env,
            cwd=workdir,
            timeout=120,  # a hung command fails here; no wall-clock bound on the page
            check=False,
        )
        assert done.returncode == c.expected, (
            f"{name}.md: `{c.line}` exited {done.returncode}, expected {c.expected}\n"
            f"{done.stdout}\n{done.stderr}"
        )
        _check_for(c, seen)(deployment, done.stdout, workdir)
