"""An HSM that stops answering pauses the chain signer; it never skips a record.

A signer that raises :class:`SignerUnavailableError` (what the PKCS#11 adapter
raises when the token fails) makes the exactly-once runner abort the batch and
run it again: once the backend answers, every event is chained, in order, and
nothing went to the dead-letter topic.
"""

from __future__ import annotations

from ops.bootstrap import Kernel
from streams.chain.errors import SignerUnavailableError
from streams.chain.signer import ChainSigner
from streams.chain.signing import LocalEd25519Signer
from tests.integration.core.test_producer import _actions, read_all


class FlakySigner:
    """Fails its first ``failures`` signatures as an unreachable HSM would."""

    def __init__(self, failures: int) -> None:
        self._inner = LocalEd25519Signer(b"\x05" * 32, "flaky")
        self.failures = failures
        self.calls = 0

    @property
    def signer_id(self) -> str:
        return self._inner.signer_id

    @property
    def public_key(self) -> bytes:
        return self._inner.public_key

    def sign(self, digest: bytes) -> bytes:
        self.calls += 1
        if self.calls <= self.failures:
            raise SignerUnavailableError("token 'test' did not sign: DeviceRemoved")
        return self._inner.sign(digest)


def test_an_unavailable_signer_aborts_and_retries_the_batch_without_dead_letters(
    kernel: Kernel,
) -> None:
    events = _actions(8, "acct-a")
    kernel.producer().publish_batch(events)
    signer = FlakySigner(failures=3)
    processor = ChainSigner(signer, kernel.names.audited(), kernel.names.chain, 3, dedup_window=100)
    runner = kernel.transactional(processor)
    try:
        runner.run_until_idle(idle_s=1.0)
        stats = runner.stats
    finally:
        runner.close()
    assert stats.aborts >= 3 and stats.dead_letters == 0
    links = [e for _, e, _ in read_all(kernel, kernel.names.chain)]
    assert [link.body["seq"] for link in links] == list(range(len(events)))
    assert [link.body["payload"]["eventId"] for link in links] == [e.event_id for e in events]
    assert read_all(kernel, kernel.names.dlq) == []
