"""One audit projector instance as its own process: ``python -m ... INSTANCE_ID``.

Settings come from the environment, as for ``kernel run audit-projector``; the
instance id is the argument (``kernel run --instance`` is the ops branch's).
Logs go to stderr; SIGTERM stops it.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from ops.bootstrap import bootstrap


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    runner = bootstrap().audit_projector(instance_id=sys.argv[1])
    try:
        runner.run(stop.is_set)
    finally:
        runner.close()


if __name__ == "__main__":
    main()
