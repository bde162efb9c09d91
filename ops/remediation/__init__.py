"""The remediation worker's adapters: the HTTP webhook and the worker around the machine.

:mod:`.http_webhook` calls a registered webhook (urllib; HMAC-SHA256-signed
body, ``Idempotency-Key``, timeout, retries with exponential backoff);
:mod:`.worker` is the :class:`~streams.processor.Processor` the transactional
runner drives: :mod:`streams.remediation.machine` decides, the actions act.
:mod:`.config` reads KERNEL_REMEDIATION_ACTIONS and the secrets.
"""
