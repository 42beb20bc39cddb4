"""`python -m sorasim --port N`: run the simulator in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from sorasim.config import SimulatorConfig
from sorasim.server import LOOPBACK, SoraSimulator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sorasim", description=__doc__)
    parser.add_argument("--host", default=LOOPBACK, help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks a free one")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sorasim %(levelname)s %(message)s")

    try:
        config = SimulatorConfig.from_env()
    except ValueError as error:
        print(f"sorasim: {error}", file=sys.stderr)
        return 2

    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    with SoraSimulator(config, host=arguments.host, port=arguments.port) as simulator:
        # The identity secret is not printed: whoever starts the process chooses it through
        # SORA_SIM_IDENTITY_HEADER when it needs to hand it to clients.
        print(f"Sora simulator listening on {simulator.url}", flush=True)
        while not stop_requested.wait(1.0):
            pass
    print("Sora simulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
