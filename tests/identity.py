"""The tests' identity at the API's door: a real bearer token holding every role.

Created once per process in a token file of its own (``KERNEL_TOKENS_FILE`` of
the test settings, so an API the tests start as a subprocess reads the same
file). Tests that are about access itself make their own tokens and
certificates (``tests/integration/ops/test_api_access.py``).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from ops.http.access import ANY, Gate
from ops.http.tokens import ROLES, TokenStore

__all__ = ["AUTH", "CALLER", "TOKEN", "TOKENS_FILE", "gate"]

_DIR = Path(tempfile.mkdtemp(prefix="kernel-test-identity-"))
atexit.register(shutil.rmtree, _DIR, True)
TOKENS_FILE = _DIR / "tokens.json"
TOKEN, _RECORD = TokenStore(TOKENS_FILE).create("test-all", ROLES)
CALLER = f"token:{_RECORD.name}"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def gate(*, every_route: bool = False) -> Gate:
    """The real gate over this process's token file; ``every_route``: rules that let
    any authenticated caller reach any path (for apps of test-only routes)."""
    if every_route:
        rules = [(m, "/", ANY) for m in ("GET", "POST", "PUT", "PATCH", "DELETE")]
        return Gate(TokenStore(TOKENS_FILE), rules=rules)
    return Gate(TokenStore(TOKENS_FILE))
