"""The signed audit chain: canonical JSON, hash links, signers and keys.

Pure code: nothing here touches Kafka or Postgres. The chain signer runner
and the audit projection drive :class:`~streams.chain.links.ChainStep`;
``replay/verify.py`` checks its output.
"""
