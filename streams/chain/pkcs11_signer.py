"""The :class:`~streams.chain.signing.Signer` port on a PKCS#11 token (an HSM; SoftHSM2 in tests).

The Ed25519 key pair is generated inside the token (``CKK_EC_EDWARDS`` on
edwards25519, ``CKA_SENSITIVE`` true, ``CKA_EXTRACTABLE`` false): the seed never
exists outside it, and the token refuses to reveal or wrap it. Signing is
``CKM_EDDSA`` without parameters (pure Ed25519) over the raw 32-byte link digest,
which gives the same 64 bytes as the key file's PyNaCl key would for the same
seed: Ed25519 is deterministic, so chain records are byte-identical whichever
backend signed them. The signerId is configured, as for a key file
(``KERNEL_SIGNER_ID``); the token finds the key by its label
(``KERNEL_PKCS11_KEY_LABEL``, default: the signerId).

PKCS#11 login belongs to the application, not to a session: a second
``C_Login`` in the process fails with ``CKR_USER_ALREADY_LOGGED_IN``. So the
process keeps one logged-in session per (module, token), shared by every signer
on it (the chain signer and the checkpointer of one ``kernel run``), and a lock
serializes its use, since a session is not for concurrent threads. This is the
one module that imports ``pkcs11`` (an import-linter contract keeps it so).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import PKCS11Error
from pkcs11.util.ec import encode_named_curve_parameters

from streams.chain.errors import SignerError, SignerUnavailableError

__all__ = [
    "Pkcs11Signer",
    "TokenConfig",
    "generate_token_key",
    "open_signer",
    "token_public_key",
    "token_session",
]

# RFC 8410 id-Ed25519: the curve of CKA_EC_PARAMS for an Ed25519 key (PKCS#11 3.0).
_ED25519_OID = "1.3.101.112"


@dataclass(frozen=True)
class TokenConfig:
    """Where the key lives: the module (.so), the token's label, the key's label, the PIN."""

    module: str
    token_label: str
    key_label: str
    pin: str = field(repr=False)  # a secret: never in a repr, a log line or an error


class _TokenSession:
    """The process's one logged-in session on a token, shared and reference-counted."""

    def __init__(self, key: tuple[str, str], session: Any) -> None:
        self.key = key
        self.session = session
        self.lock = threading.Lock()
        self.users = 0


_sessions: dict[tuple[str, str], _TokenSession] = {}
_sessions_lock = threading.Lock()


def _acquire(config: TokenConfig) -> _TokenSession:
    key = (config.module, config.token_label)
    with _sessions_lock:
        shared = _sessions.get(key)
        if shared is None:
            shared = _TokenSession(key, _login(config))
            _sessions[key] = shared
        shared.users += 1
        return shared


def _discard(shared: _TokenSession) -> None:
    """A session that failed: no signer acquires it again (its users leave it one by one)."""
    with _sessions_lock:
        if _sessions.get(shared.key) is shared:
            del _sessions[shared.key]


def _release(shared: _TokenSession) -> None:
    with _sessions_lock:
        shared.users -= 1
        if shared.users > 0:
            return
        if _sessions.get(shared.key) is shared:  # not a healthy successor of a discarded one
            del _sessions[shared.key]
        # A token that went away has nothing left to close.
        with shared.lock, contextlib.suppress(PKCS11Error):
            shared.session.close()


def _login(config: TokenConfig) -> Any:
    where = f"token {config.token_label!r} of {config.module}"
    try:
        lib = pkcs11.lib(config.module)
    except PKCS11Error as exc:
        raise SignerError(f"cannot load the PKCS#11 module {config.module}: {exc}") from exc
    try:
        token = lib.get_token(token_label=config.token_label)
    except pkcs11.NoSuchToken as exc:
        raise SignerError(
            f"no {where}; initialise one (SoftHSM2: softhsm2-util --init-token --free "
            f"--label {config.token_label} ...) or set KERNEL_PKCS11_TOKEN_LABEL"
        ) from exc
    except PKCS11Error as exc:
        raise SignerError(f"cannot reach the {where}: {type(exc).__name__}") from exc
    try:
        return token.open(rw=True, user_pin=config.pin)
    except pkcs11.UserAlreadyLoggedIn:
        # A discarded session still open elsewhere in the process keeps the login
        # (it is the application's): a new session is logged in already. (The
        # session whose C_Login was refused stays open until the module finalizes.)
        return token.open(rw=True)
    except pkcs11.PinIncorrect as exc:
        raise SignerError(f"the {where} refused the PIN (KERNEL_PKCS11_PIN[_FILE])") from exc
    except PKCS11Error as exc:
        raise SignerError(f"cannot log in to the {where}: {type(exc).__name__}") from exc


def _find(session: Any, object_class: ObjectClass, label: str) -> Any | None:
    found = list(
        session.get_objects(
            {
                Attribute.CLASS: object_class,
                Attribute.KEY_TYPE: KeyType.EC_EDWARDS,
                Attribute.LABEL: label,
            }
        )
    )
    if len(found) > 1:
        raise SignerError(f"the token holds {len(found)} Ed25519 keys labelled {label!r}")
    return found[0] if found else None


def _raw_public_key(public: Any) -> bytes:
    """CKA_EC_POINT of an Ed25519 key: the 32 raw bytes, DER-wrapped as an OCTET STRING."""
    point = bytes(public[Attribute.EC_POINT])
    if len(point) == 34 and point[:2] == b"\x04\x20":
        return point[2:]
    if len(point) == 32:  # some tokens return the raw point
        return point
    raise SignerError(f"unexpected CKA_EC_POINT of an Ed25519 key ({len(point)} bytes)")


class Pkcs11Signer:
    """Signs with an Ed25519 private key that stays inside a PKCS#11 token.

    A failed signature raises :class:`SignerUnavailableError` (the runner runs
    the batch again; it never skips the record) and drops the session: the next
    call logs in again and finds the key anew, so a restarted HSM or a lost
    network session heals without restarting the worker.
    """

    __slots__ = ("_config", "_private", "_public", "_shared", "_signer_id")

    def __init__(
        self,
        config: TokenConfig,
        shared: _TokenSession,
        private: Any,
        public_key: bytes,
        signer_id: str,
    ) -> None:
        self._config = config
        self._shared: _TokenSession | None = shared
        self._private: Any | None = private
        self._public = public_key
        self._signer_id = signer_id

    @property
    def signer_id(self) -> str:
        return self._signer_id

    @property
    def public_key(self) -> bytes:
        return self._public

    def sign(self, digest: bytes) -> bytes:
        shared = self._shared
        if shared is None:
            raise SignerError(f"the PKCS#11 signer {self._signer_id!r} is closed")
        try:
            private = self._private
            if private is None:
                shared, private = self._reconnect(shared)
            with shared.lock:
                signature = bytes(private.sign(digest, mechanism=Mechanism.EDDSA))
        except (PKCS11Error, SignerError) as exc:
            self._private = None  # the next call logs in again and finds the key anew
            if isinstance(exc, SignerUnavailableError):
                raise
            reason = str(exc) if isinstance(exc, SignerError) else type(exc).__name__
            raise SignerUnavailableError(
                f"token {self._config.token_label!r} did not sign for {self._signer_id!r}: {reason}"
            ) from exc
        if len(signature) != 64:
            raise SignerError(f"the token returned a {len(signature)}-byte Ed25519 signature")
        return signature

    def _reconnect(self, failed: _TokenSession) -> tuple[_TokenSession, Any]:
        _discard(failed)
        self._shared = None
        _release(failed)
        shared = _acquire(self._config)
        self._shared = shared
        with shared.lock:
            private, public = _key_pair(shared.session, self._config)
        if public != self._public:
            raise SignerUnavailableError(
                f"key {self._config.key_label!r} in token {self._config.token_label!r} is no "
                f"longer the key {self._signer_id!r} started with; it will not sign with another"
            )
        self._private = private
        return shared, private

    def close(self) -> None:
        """Leave the token (the last signer of a process closes the shared session)."""
        shared, self._shared = self._shared, None
        if shared is not None:
            _release(shared)

    def __repr__(self) -> str:
        return f"Pkcs11Signer(signer_id={self._signer_id!r})"


def _key_pair(session: Any, config: TokenConfig) -> tuple[Any, bytes]:
    private = _find(session, ObjectClass.PRIVATE_KEY, config.key_label)
    public = _find(session, ObjectClass.PUBLIC_KEY, config.key_label)
    if private is None or public is None:
        raise SignerError(
            f"no Ed25519 key {config.key_label!r} in token {config.token_label!r}; "
            f"create it with `kernel keys generate --pkcs11`"
        )
    return private, _raw_public_key(public)


def open_signer(config: TokenConfig, signer_id: str) -> Pkcs11Signer:
    """The signer of the key labelled ``config.key_label``; SignerError if it is not there."""
    if not signer_id:
        raise SignerError("a signer needs a non-empty signerId")
    shared = _acquire(config)
    try:
        with shared.lock:
            private, raw = _key_pair(shared.session, config)
    except BaseException:
        _release(shared)
        raise
    return Pkcs11Signer(config, shared, private, raw, signer_id)


def token_public_key(config: TokenConfig) -> bytes:
    """The raw public key of the configured key (what ``signers.json`` lists)."""
    signer = open_signer(config, config.key_label)
    try:
        return signer.public_key
    finally:
        signer.close()


@contextlib.contextmanager
def token_session(config: TokenConfig) -> Iterator[Any]:
    """The process's logged-in session on the token, held exclusively for the block.

    For administration (key generation, the tests' key import): opening a second
    logged-in session in the process is what PKCS#11 refuses.
    """
    shared = _acquire(config)
    try:
        with shared.lock:
            yield shared.session
    finally:
        _release(shared)


def generate_token_key(config: TokenConfig, *, if_missing: bool = False) -> tuple[bytes, bool]:
    """Generate the key pair inside the token: (raw public key, whether it was created).

    Never replaces a key: an existing label is an error unless ``if_missing``.
    """
    with token_session(config) as session:
        existing = _find(session, ObjectClass.PUBLIC_KEY, config.key_label)
        if existing is not None:
            if not if_missing:
                raise SignerError(
                    f"token {config.token_label!r} already holds key "
                    f"{config.key_label!r}; keys are never overwritten"
                )
            return _raw_public_key(existing), False
        try:
            public, _private = session.generate_keypair(
                KeyType.EC_EDWARDS,
                store=True,
                label=config.key_label,
                id=config.key_label.encode("utf-8"),
                public_template={
                    Attribute.EC_PARAMS: encode_named_curve_parameters(_ED25519_OID),
                    Attribute.VERIFY: True,
                },
                private_template={
                    Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: False,
                    Attribute.SIGN: True,
                    Attribute.PRIVATE: True,
                },
                mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
            )
        except PKCS11Error as exc:
            raise SignerError(
                f"token {config.token_label!r} could not generate an Ed25519 key: "
                f"{type(exc).__name__}"
            ) from exc
        return _raw_public_key(public), True
