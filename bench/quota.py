"""Quota admissions against Azurite: the remembered state (write only) versus read-then-write.

Both run the real `QuotaStore` on the same Azurite in one process. The baseline forgets the
remembered state before every admission, which is what the gateway did before (read the row,
decide, write if unchanged); the candidate writes on the state it last saw. Measured at several
fills of the day (the row's size grows with them). Prints storage round trips and wall time per
admission, and candidate/baseline ratios.

Target (issue 3): one round trip per admission in steady state instead of two.
"""

from __future__ import annotations

import argparse
import array
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from azure.core.pipeline.transport import HttpRequest, HttpResponse, RequestsTransport
from azure.data.tables import TableServiceClient

from devhost.azurite import Azurite
from gateway.quota import QUOTA_TABLE, Limits, QuotaState, QuotaStore, encode_state, to_ms
from gateway.tables import Tables

PROJECT_DIR = Path(__file__).resolve().parent.parent
LIMITS = Limits(hour=10**6, day=200_000)


class CountingTransport(RequestsTransport):  # type: ignore[misc]  # untyped base
    count = 0

    def send(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        self.count += 1
        response: HttpResponse = super().send(request, **kwargs)
        return response


def run(connection_string: str, fill: int, admissions: int, *, remember: bool) -> tuple[float, float]:
    """(round trips, seconds) per admission into a row already holding `fill` admissions."""
    transport = CountingTransport()
    tables = Tables(
        TableServiceClient.from_connection_string(connection_string, transport=transport),
        prefix="b" + uuid.uuid4().hex[:10],
    )
    now = time.time()
    times = array.array("q", (to_ms(now - 80_000 + i * (80_000 / max(fill, 1))) for i in range(fill)))
    tables.get(QUOTA_TABLE).create_entity(encode_state("app", QuotaState(times=times)))
    quota = QuotaStore(tables)
    quota.usage("app", LIMITS, now)  # warm: the table exists and the state was seen once
    before, started = transport.count, time.perf_counter()
    for i in range(admissions):
        if not remember:
            quota._forget("app")  # the baseline: read before every write
        assert quota.admit("app", LIMITS, f"job{i}", now + 1 + i * 0.001).admitted
    elapsed = time.perf_counter() - started
    return (transport.count - before) / admissions, elapsed / admissions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--admissions", type=int, default=200)
    parser.add_argument("--fills", default="0,10000,100000")
    args = parser.parse_args()
    emulator = Azurite(PROJECT_DIR, Path(tempfile.mkdtemp()), in_memory=True)
    emulator.start()
    try:
        print(
            f"{'fill':>7} {'trips base':>10} {'trips new':>9} {'ms base':>8} {'ms new':>7} {'trips x':>7} {'time x':>7}"
        )
        for fill in (int(value) for value in args.fills.split(",")):
            base_trips, base_time = run(emulator.connection_string, fill, args.admissions, remember=False)
            new_trips, new_time = run(emulator.connection_string, fill, args.admissions, remember=True)
            print(
                f"{fill:>7} {base_trips:>10.2f} {new_trips:>9.2f} {base_time * 1000:>8.2f} {new_time * 1000:>7.2f}"
                f" {new_trips / base_trips:>7.3f} {new_time / base_time:>7.3f}"
            )
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
