"""`python -m devhost`: run the whole local stack in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from devhost.functions import AppIndexError
from devhost.stack import LocalStack


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    # Quiet the SDKs' per-request logging; it drowns the gateway's own lines.
    for noisy in ("azure", "urllib3", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    stack = LocalStack.from_project(Path.cwd())
    stopping = threading.Event()
    stopper = threading.Thread(target=stack.stop, name="devhost-stop")

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        if not stopping.is_set():
            logging.getLogger("devhost").info("received %s, stopping", signal.Signals(signum).name)
            stopper.start()
            stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        stack.start()
    except AppIndexError as refused:
        print(f"\nThe app does not start: Azure's Python worker refuses it.\n  {refused}\n", file=sys.stderr)
        return 1
    print("\nLocal stack ready:\n" + stack.describe() + "\nCtrl-C stops everything.\n", flush=True)
    # Short waits keep the main thread responsive to signals.
    while not stopping.wait(0.5):
        pass
    stopper.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
