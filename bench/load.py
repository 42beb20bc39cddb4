"""A bounded load run against the local stack: many apps creating, polling, listing and downloading,
with hostile requests mixed in; then the invariants that must hold after any load.

Loopback only, and it stops by itself (`--seconds`, default 60). It starts its own stack (Azurite,
the simulator and the dev host, as the tests do) in a temporary directory and prints:

- requests per second, and p50/p99 latency per endpoint;
- answers by status (no 5xx is allowed), and the hostile requests' answers;
- the dev host's peak memory (VmHWM of its process);
- storage round trips per create and per read, counted at the storage client (the gateway's own
  stores, on the stack's Azurite, with a counting pipeline policy);
- the invariants, checked once every job has ended: no job unfinished; per app, the quota in use is
  exactly the jobs that hold a slot; one upstream job per accepted request (at most one where the
  provider cannot be asked); no blob without a job that should have it; exactly one of a burst of
  racing key rotations wins.

Run: `.venv/bin/python -m bench.load [--seconds 60] [--apps 6]`.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from gateway.jobs import Job, JobStore
from gateway.quota import Limits
from gateway.tables import Tables
from tests.conftest import RunningStack, launch_stack
from tests.round_trips import CountedStores

GENEROUS = '{"free": null, "pro": {"hour": 100000, "day": 100000}, "business": {"hour": 5, "day": 20}}'
HOLDING_CODES_REFUNDED = frozenset({"upstream_access_denied", "upstream_ambiguous", "provider_unavailable"})


@dataclass
class Recorder:
    """Latencies by endpoint and answers by status, from every worker thread."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call(
        self, endpoint: str, send: Callable[..., requests.Response], *args: Any, **kwargs: Any
    ) -> requests.Response:
        started = time.perf_counter()
        response = send(*args, **kwargs)
        elapsed = time.perf_counter() - started
        with self.lock:
            self.latencies[endpoint].append(elapsed)
            self.statuses[(endpoint, response.status_code)] += 1
        return response


@dataclass
class Accepted:
    app_key: str
    video_id: str
    marker: str


class LoadApp:
    """One app's loop: create, poll until done, list, download; now and then cancel one."""

    def __init__(self, stack: RunningStack, recorder: Recorder, key: str, index: int) -> None:
        self.stack, self.recorder, self.key, self.index = stack, recorder, key, index
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key}"
        self.accepted: list[Accepted] = []

    def run(self, until: float) -> None:
        turn = 0
        while time.monotonic() < until:
            turn += 1
            marker = f"#load-{uuid.uuid4().hex[:12]}"
            body = {
                "prompt": f"load app {self.index} turn {turn} {marker}",
                "model": "sora-2",
                "seconds": "4",
            }
            created = self.recorder.call(
                "POST /v1/videos",
                self.session.post,
                f"{self.stack.api}/v1/videos",
                json=body,
                timeout=60,
            )
            if created.status_code != 202:
                time.sleep(0.5)
                continue
            video_id = created.json()["id"]
            self.accepted.append(Accepted(self.key, video_id, marker))
            if turn % 5 == 0:  # cancel every fifth while it is in flight
                self.recorder.call(
                    "DELETE /v1/videos/{id}",
                    self.session.delete,
                    f"{self.stack.api}/v1/videos/{video_id}",
                    timeout=30,
                )
            self._poll_until_done(video_id, until + 60)
            self.recorder.call(
                "GET /v1/videos", self.session.get, f"{self.stack.api}/v1/videos?limit=10", timeout=30
            )

    def _poll_until_done(self, video_id: str, deadline: float) -> None:
        while time.monotonic() < deadline:
            response = self.recorder.call(
                "GET /v1/videos/{id}",
                self.session.get,
                f"{self.stack.api}/v1/videos/{video_id}",
                timeout=30,
            )
            status = response.json().get("status") if response.status_code == 200 else None
            if status == "completed":
                content = self.recorder.call(
                    "GET /v1/videos/{id}/content",
                    self.session.get,
                    f"{self.stack.api}/v1/videos/{video_id}/content",
                    allow_redirects=False,
                    timeout=30,
                )
                if content.status_code == 302:
                    self.recorder.call("GET <SAS URL>", requests.get, content.headers["Location"], timeout=30)
                return
            if status == "failed" or response.status_code != 200:
                return
            time.sleep(1.0)


def hostile_requests(
    stack: RunningStack, free_key: str, key: str
) -> dict[str, Callable[[], requests.Response]]:
    """Requests an attacker with an ordinary key (or a free one) sends; each must be a 4xx, quickly."""
    api = stack.api
    bearer = {"Authorization": f"Bearer {key}"}
    deep = ("[" * 100_000) + ("]" * 100_000)
    boundary = "hostile"
    tiny_parts = (
        "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="f{n}"\r\n\r\nx\r\n' for n in range(20_000)
        )
        + f"--{boundary}--\r\n"
    )
    return {
        "nested JSON create": lambda: requests.post(
            f"{api}/v1/videos", headers={**bearer, "content-type": "application/json"}, data=deep, timeout=60
        ),
        "nested JSON manage": lambda: requests.post(
            f"{api}/v1/manage/apps",
            headers={"x-admin-key": stack.admin_key, "content-type": "application/json"},
            data='{"name": ' + deep + "}",
            timeout=60,
        ),
        "huge integer": lambda: requests.post(
            f"{api}/v1/videos",
            headers={**bearer, "content-type": "application/json"},
            data='{"prompt": "p", "seconds": ' + "9" * 50_000 + "}",
            timeout=60,
        ),
        "not UTF-8": lambda: requests.post(
            f"{api}/v1/videos",
            headers={**bearer, "content-type": "application/json"},
            data=b"\xff\xfe{",
            timeout=60,
        ),
        "20k tiny multipart parts": lambda: requests.post(
            f"{api}/v1/videos",
            headers={**bearer, "content-type": f"multipart/form-data; boundary={boundary}"},
            data=tiny_parts.encode(),
            timeout=60,
        ),
        "7000x7000 PNG": lambda: requests.post(
            f"{api}/v1/videos",
            headers=bearer,
            files={"input_reference": ("big.png", _huge_png(), "image/png")},
            data={"prompt": "p", "model": "sora-2"},
            timeout=60,
        ),
        "free plan create": lambda: requests.post(
            f"{api}/v1/videos",
            headers={"Authorization": f"Bearer {free_key}"},
            json={"prompt": "p"},
            timeout=60,
        ),
        "unknown key": lambda: requests.get(
            f"{api}/v1/videos", headers={"Authorization": "Bearer sgw_" + "x" * 43}, timeout=30
        ),
        "another app's video": lambda: requests.get(
            f"{api}/v1/videos/video_{uuid.uuid4().hex}", headers=bearer, timeout=30
        ),
    }


_PNG: bytes | None = None


def _huge_png() -> bytes:
    """A small file of huge dimensions (compresses to a few hundred KB)."""
    global _PNG
    if _PNG is None:
        from PIL import Image

        buffer = io.BytesIO()
        Image.new("L", (7000, 7000)).save(buffer, format="PNG", optimize=True)
        _PNG = buffer.getvalue()
    return _PNG


def racing_rotations(stack: RunningStack, app_id: str, racers: int = 10) -> Counter[int]:
    def rotate() -> int:
        return stack.client.manage("POST", f"/apps/{app_id}/keys").status_code

    with ThreadPoolExecutor(racers) as pool:
        return Counter(pool.map(lambda _: rotate(), range(racers)))


def round_trips(connection_string: str, api_key: str, video_id: str) -> tuple[int, int]:
    """Storage round trips of one create (authenticate, take a slot, record the job) and one read
    (authenticate, read the job), made by the gateway's own stores, counted once warm."""
    stores = CountedStores(connection_string, limits=Limits(hour=100_000, day=100_000))

    def create() -> int:
        created: list[Job] = []
        trips = stores.trips_of(lambda: created.append(stores.create(api_key)))
        # Undone at once (not counted): the measurement leaves no job and no slot behind.
        job = created[0]
        stores.jobs.delete_job(job.app_id, job.id)
        stores.quota.release(job.app_id, job.id, time.time())
        return trips

    def read() -> int:
        return stores.trips_of(lambda: stores.read(api_key, video_id))

    create(), read()  # warm: tables exist, any per-process state is filled
    return create(), read()


def holds_slot(job: Job) -> bool:
    """The documented refund rule: a job that never reached its provider (and was not cancelled) or
    failed with a refunded code gives its slot back; every other job keeps it."""
    if job.status != "failed":
        return True
    if job.error_code in HOLDING_CODES_REFUNDED:
        return False
    return job.upstream_id is not None or job.error_code == "cancelled"


def check_invariants(
    stack: RunningStack, accepted: list[Accepted], app_keys: dict[str, str]
) -> dict[str, str]:
    results: dict[str, str] = {}
    deadline = time.monotonic() + 180
    unfinished = stack.unfinished_jobs()
    while unfinished and time.monotonic() < deadline:
        time.sleep(2)
        unfinished = stack.unfinished_jobs()
    results["no job unfinished"] = "ok" if not unfinished else f"FAILED: {unfinished[:5]}"

    service = TableServiceClient.from_connection_string(stack.storage_connection_string)
    store = JobStore(Tables(service))
    wrong_quota = []
    for key in app_keys:
        used = stack.client.usage(key)["used"]["day"]
        mine = [a for a in accepted if a.app_key == key]
        records = [store.get_job(app_keys[key], a.video_id) for a in mine]
        expected = sum(1 for job in records if job is not None and holds_slot(job))
        if used != expected:
            wrong_quota.append((app_keys[key], used, expected))
    results["quota = jobs holding a slot"] = "ok" if not wrong_quota else f"FAILED: {wrong_quota}"

    doubled = []
    for item in accepted:
        job = store.get_job(app_keys[item.app_key], item.video_id)
        upstream = stack.upstream_jobs_for(item.marker)
        if upstream > 1 or (job is not None and job.status == "completed" and upstream != 1):
            doubled.append((item.video_id, upstream))
    results["one upstream job per accepted request"] = "ok" if not doubled else f"FAILED: {doubled[:5]}"

    blobs = BlobServiceClient.from_connection_string(stack.storage_connection_string)
    container = blobs.get_container_client("videos")
    stray = []
    names = [blob.name for blob in container.list_blobs()] if container.exists() else []
    for name in names:
        parts = name.split("/")
        job = store.get_job(parts[0], parts[1]) if len(parts) >= 3 else None
        if job is None or (job.status == "failed" and name in (job.video_blob, job.thumbnail_blob)):
            stray.append(name)
    results["no orphan blob"] = "ok" if not stray else f"FAILED: {stray[:5]}"
    return results


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--apps", type=int, default=6)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="load-") as state:
        stack = launch_stack(Path(state), PLAN_LIMITS=GENEROUS, SORA_SIM_JOB_SECONDS="4")
        try:
            run(stack, args.seconds, args.apps)
        finally:
            stack.stop()


def run(stack: RunningStack, seconds: float, app_count: int) -> None:
    recorder = Recorder()
    apps = [stack.client.create_app("pro", name=f"load {n}") for n in range(app_count)]
    hostile_app = stack.client.create_app("pro", name="hostile")
    free_app = stack.client.create_app("free", name="hostile free")
    rotated = stack.client.create_app("pro", name="rotated")
    loaders = [LoadApp(stack, recorder, app.api_key, n) for n, app in enumerate(apps)]
    hostile = hostile_requests(stack, free_app.api_key, hostile_app.api_key)
    hostile_answers: dict[str, Counter[int]] = defaultdict(Counter)
    pid = stack.process.pid if stack.process else 0

    started = time.monotonic()
    until = started + seconds
    with ThreadPoolExecutor(app_count + 1) as pool:
        running = [pool.submit(loader.run, until) for loader in loaders]

        def attack() -> None:
            while time.monotonic() < until:
                for name, send in hostile.items():
                    response = recorder.call(f"hostile: {name}", send)
                    hostile_answers[name][response.status_code] += 1

        running.append(pool.submit(attack))
        for future in running:
            future.result()
    elapsed = time.monotonic() - started
    rotations = racing_rotations(stack, rotated.id)

    accepted = [item for loader in loaders for item in loader.accepted]
    total = sum(len(values) for values in recorder.latencies.values())
    print(
        f"\nload: {app_count} apps + 1 hostile app for {elapsed:.0f} s: {total} requests, {total / elapsed:.1f} req/s"
    )
    print(f"{'endpoint':44} {'n':>6} {'p50 ms':>9} {'p99 ms':>9}")
    for endpoint, values in sorted(recorder.latencies.items()):
        print(
            f"{endpoint:44} {len(values):6d} {1000 * statistics.median(values):9.1f} "
            f"{1000 * percentile(values, 0.99):9.1f}"
        )
    by_status: Counter[int] = Counter()
    for (_, status), count in recorder.statuses.items():
        by_status[status] += count
    print("answers by status:", dict(sorted(by_status.items())))
    print("hostile answers:", {name: dict(answers) for name, answers in hostile_answers.items()})
    print("racing key rotations (10):", dict(rotations))
    print(f"dev host peak memory: {peak_rss_mib(pid):.0f} MiB")

    keys = {app.api_key: app.id for app in apps}
    if accepted:
        creates, reads = round_trips(stack.storage_connection_string, apps[0].api_key, accepted[0].video_id)
        print(f"storage round trips: create {creates}, read {reads} (targets: <= 3, <= 2)")
    invariants = check_invariants(stack, accepted, keys)
    invariants["no 5xx"] = "ok" if not any(status >= 500 for status in by_status) else "FAILED"
    invariants["hostile requests all 4xx"] = (
        "ok"
        if all(400 <= status < 500 for answers in hostile_answers.values() for status in answers)
        else "FAILED"
    )
    invariants["one rotation wins"] = "ok" if rotations.get(200) == 1 and not rotations.get(500) else "FAILED"
    print("invariants:")
    for name, result in invariants.items():
        print(f"  {name:40} {result}")
    print(json.dumps({"accepted": len(accepted), "requests": total}))


if __name__ == "__main__":
    main()
