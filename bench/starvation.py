"""Can one app stall another? The victim's latency with and without an attacking app.

Starts a local stack (Azurite, simulator, dev host) and a trickling HTTP server, all on loopback,
and makes two apps. The victim runs, one after another, `ROUNDS` times: a create, a GET of that
video, and GET /api/health. First alone, then while the attacker runs both attacks of the
findings at once, in this same process:

- trickle: `ATTACKERS` threads each create with an `image_url` whose server sends a few bytes
  every 50 ms (the fetch is cut at its 10 s deadline), re-sending as soon as answered;
- stuck replay: `ATTACKERS` threads replay an Idempotency-Key whose first request is itself
  stuck on the trickling image.

Refused attacker requests (429 beyond its per-app cap, 409 while the key's first request is in
flight) are re-sent after `--resend` seconds: by default the 1 s their Retry-After asks for, so
the attack keeps its pressure without turning into a request flood. A flood that ignores
Retry-After (try `--resend 0.2`: ~120 requests a second) measures the two shared cores and the
cost of answering each request, a request-rate problem, not one app's work stalling another's.

Prints p50/p99 of the victim per operation and over all, with and without the attack, and the
ratio. Target: p99(attack) <= 2x p99(no attack). Stops by itself; loopback only.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import requests

from tests.conftest import RunningStack, launch_stack
from tests.gateway.urls_server import LocalServer, wait_until

ATTACKERS = 12
PLAN_LIMITS = json.dumps({"free": None, "pro": {"hour": 1000, "day": 10000}})


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def timed(
    samples: list[float], response_of: Callable[[], requests.Response], expected: int
) -> requests.Response:
    started = time.perf_counter()
    response = response_of()
    samples.append(time.perf_counter() - started)
    if response.status_code != expected:
        raise RuntimeError(f"victim got {response.status_code}: {response.text[:300]}")
    return response


def run_victim(stack: RunningStack, key: str, rounds: int) -> dict[str, list[float]]:
    headers = stack.headers(key)
    samples: dict[str, list[float]] = {"create": [], "get": [], "health": []}
    for round_number in range(rounds):
        body = {"prompt": f"victim {round_number}", "seconds": "4"}
        created = timed(
            samples["create"],
            functools.partial(
                requests.post, f"{stack.api}/v1/videos", headers=headers, json=body, timeout=120
            ),
            202,
        )
        video_url = f"{stack.api}/v1/videos/{created.json()['id']}"
        timed(samples["get"], functools.partial(requests.get, video_url, headers=headers, timeout=120), 200)
        timed(samples["health"], functools.partial(requests.get, f"{stack.api}/health", timeout=120), 200)
    return samples


class Attack:
    """The attacker app's two attacks, run by threads until stopped; counts its answers."""

    def __init__(self, stack: RunningStack, key: str, trickle_url: str, resend_seconds: float) -> None:
        self._stack = stack
        self._resend_seconds = resend_seconds
        self._headers = stack.headers(key)
        self._body = {"prompt": "attack", "input_reference": {"image_url": trickle_url}}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.answers: Counter[str] = Counter()
        self._lock = threading.Lock()

    def start(self) -> None:
        # The stuck key's first request, which then sits on the trickle while the replays arrive.
        self._spawn(self._loop, {"Idempotency-Key": "stuck"}, "first")
        for number in range(ATTACKERS):
            self._spawn(self._loop, {}, f"trickle-{number}")
            self._spawn(self._loop, {"Idempotency-Key": "stuck"}, f"replay-{number}")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _spawn(self, target: Callable[[dict[str, str]], None], headers: dict[str, str], name: str) -> None:
        thread = threading.Thread(target=target, args=(headers,), name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _loop(self, extra_headers: dict[str, str]) -> None:
        while not self._stop.is_set():
            try:
                response = requests.post(
                    f"{self._stack.api}/v1/videos",
                    headers={**self._headers, **extra_headers},
                    json=self._body,
                    timeout=120,
                )
                answer = str(response.status_code)
                if response.status_code >= 400:
                    answer += " " + str(response.json()["error"]["code"])
            except requests.RequestException as error:
                answer = type(error).__name__
            with self._lock:
                self.answers[answer] += 1
            if not answer.startswith("400"):  # refused at once: re-send after a short pause
                self._stop.wait(self._resend_seconds)


def summarize(label: str, samples: dict[str, list[float]]) -> dict[str, tuple[float, float]]:
    rows = {name: values for name, values in samples.items()}
    rows["all"] = [value for values in samples.values() for value in values]
    figures = {name: (statistics.median(values), percentile(values, 0.99)) for name, values in rows.items()}
    for name, (p50, p99) in figures.items():
        print(f"  {label:<10} {name:<7} p50 {p50 * 1000:8.1f} ms   p99 {p99 * 1000:8.1f} ms")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=200, help="victim rounds per phase (default 200)")
    parser.add_argument("--blocks", type=int, default=4, help="quiet/attack block pairs (default 4)")
    parser.add_argument(
        "--resend",
        type=float,
        default=1.0,
        help="seconds before a refused attacker request is re-sent (default 1)",
    )
    args = parser.parse_args()

    trickler = LocalServer().start()
    with tempfile.TemporaryDirectory(prefix="starvation-") as state:
        stack = launch_stack(Path(state), PLAN_LIMITS=PLAN_LIMITS, SORA_SIM_JOB_SECONDS="1")
        try:
            victim = stack.client.create_app("pro", name="victim")
            attacker = stack.client.create_app("pro", name="attacker")
            run_victim(stack, victim.api_key, 3)  # warm-up: first-use clients, connections, imports
            print(
                f"victim: {args.rounds} rounds of create + GET + health per phase, one after another, in "
                f"{args.blocks} blocks ordered quiet-attack, attack-quiet, ... (so drift and other load fall on both); "
                f"the attacker re-sends refused requests after {args.resend} s"
            )
            quiet: dict[str, list[float]] = {"create": [], "get": [], "health": []}
            attacked: dict[str, list[float]] = {"create": [], "get": [], "health": []}
            answers: Counter[str] = Counter()
            per_block = max(1, args.rounds // args.blocks)
            for block in range(args.blocks):
                # Quiet-attack, then attack-quiet: the victim's own jobs pile up in the background
                # as the run goes on, and this order lets that drift fall on both phases alike.
                for attacking in (False, True) if block % 2 == 0 else (True, False):
                    if not attacking:
                        for name, values in run_victim(stack, victim.api_key, per_block).items():
                            quiet[name].extend(values)
                        continue
                    attack = Attack(stack, attacker.api_key, trickler.url("/trickle"), args.resend)
                    attack.start()
                    try:
                        if not wait_until(lambda: trickler.trickling >= 2, timeout=60):
                            raise RuntimeError("the attack never reached the trickling server")
                        for name, values in run_victim(stack, victim.api_key, per_block).items():
                            attacked[name].extend(values)
                        if trickler.trickling < 2:
                            raise RuntimeError("the attack stopped before the victim's rounds ended")
                    finally:
                        attack.stop()
                    answers.update(attack.answers)
            quiet_figures = summarize("no attack", quiet)
            attacked_figures = summarize("attack", attacked)
            print(f"attacker answers: {dict(sorted(answers.items()))}")
            for name in quiet_figures:
                p50_ratio = attacked_figures[name][0] / quiet_figures[name][0]
                p99_ratio = attacked_figures[name][1] / quiet_figures[name][1]
                print(f"  ratio attack/no attack {name:<7} p50 {p50_ratio:5.2f}x   p99 {p99_ratio:5.2f}x")
            overall = attacked_figures["all"][1] / quiet_figures["all"][1]
            verdict = "met" if overall <= 2 else "NOT met"
            print(f"target p99(attack) <= 2x p99(no attack): {verdict} ({overall:.2f}x)")
        finally:
            trickler.stop()
            stack.stop_after_every_job_ends()


if __name__ == "__main__":
    main()
