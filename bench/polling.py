"""Adaptive polling versus fixed 10-second polling, in virtual time.

Drives the gateway's real `PollPolicy` over simulated Sora jobs whose durations spread from
30 s to 10 min, with a queued phase and progress curves of several shapes (linear, slow start,
fast start, a plateau near the end) plus reporting noise. Prints the number of status checks
and the detection lag (upstream done -> gateway notices) of both strategies.

Targets (issue 3): at most one third of fixed polling's checks, mean lag at most 5 s.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass

from gateway.polling import PollPolicy, ProgressTrack
from gateway.settings import Settings

FIXED_INTERVAL = 10.0
Curve = Callable[[float], float]
CURVES: dict[str, Curve] = {
    "linear": lambda x: x,
    "slow_start": lambda x: x**1.6,
    "fast_start": lambda x: 1 - (1 - x) ** 1.6,
    "plateau": lambda x: min(1.0, 1.08 * x) * 0.97 if x < 0.97 else 0.97 + (x - 0.97),
}


@dataclass(frozen=True)
class SimulatedJob:
    duration: float  # seconds from upstream creation to completed
    queued: float  # seconds with progress 0 before generation starts
    curve: Curve
    noise: float
    seed: int

    def progress_at(self, t: float) -> int:
        if t >= self.duration:
            return 100
        if t < self.queued:
            return 0
        x = (t - self.queued) / (self.duration - self.queued)
        jitter = random.Random(self.seed * 1_000_003 + int(t)).uniform(-self.noise, self.noise)
        return max(0, min(99, math.floor(100 * self.curve(x) + jitter)))


def make_jobs(count: int, seed: int) -> list[SimulatedJob]:
    rng = random.Random(seed)
    jobs = []
    for index in range(count):
        duration = math.exp(rng.uniform(math.log(30), math.log(600)))  # 30 s .. 10 min, log-uniform
        jobs.append(
            SimulatedJob(
                duration=duration,
                queued=duration * rng.uniform(0.0, 0.3),
                curve=rng.choice(list(CURVES.values())),
                noise=rng.uniform(0, 3),
                seed=index,
            )
        )
    return jobs


def run_adaptive(job: SimulatedJob, policy: PollPolicy) -> tuple[int, float]:
    """(status checks, detection lag) with the pipeline's loop: observe, wait next_delay, check."""
    t, checks = 0.0, 0
    progress = job.progress_at(t)
    track = ProgressTrack().observe(t, progress)
    while progress < 100:
        t += policy.next_delay(track)
        checks += 1
        progress = job.progress_at(t)
        track = track.observe(t, progress)
    return checks, t - job.duration


def run_fixed(job: SimulatedJob) -> tuple[int, float]:
    checks = math.ceil(job.duration / FIXED_INTERVAL)
    return checks, checks * FIXED_INTERVAL - job.duration


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    # The default polling settings of a deployment (any account will do; none is contacted).
    defaults = Settings.from_env(
        {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "AIMLAPI_API_KEY": "k"}
    )
    policy = PollPolicy(defaults.poll_min_seconds, defaults.poll_max_seconds)
    jobs = make_jobs(args.jobs, args.seed)

    adaptive = [run_adaptive(job, policy) for job in jobs]
    fixed = [run_fixed(job) for job in jobs]
    adaptive_checks = sum(checks for checks, _ in adaptive)
    fixed_checks = sum(checks for checks, _ in fixed)
    adaptive_lag = statistics.fmean(lag for _, lag in adaptive)
    fixed_lag = statistics.fmean(lag for _, lag in fixed)
    ratio = adaptive_checks / fixed_checks
    p95 = sorted(lag for _, lag in adaptive)[int(0.95 * len(adaptive))]

    print(f"jobs simulated               {len(jobs)} (30 s .. 10 min, 4 progress shapes, noise)")
    print(f"policy                       min {policy.min_seconds:g} s, max {policy.max_seconds:g} s")
    print(f"status checks  fixed 10 s    {fixed_checks}  ({fixed_checks / len(jobs):.1f} per job)")
    print(f"status checks  adaptive      {adaptive_checks}  ({adaptive_checks / len(jobs):.1f} per job)")
    print(f"checks ratio adaptive/fixed  {ratio:.3f}   (target <= 0.333)")
    print(f"mean detection lag  fixed    {fixed_lag:.2f} s")
    print(f"mean detection lag  adaptive {adaptive_lag:.2f} s   (target <= 5 s; p95 {p95:.2f} s)")
    met = ratio <= 1 / 3 and adaptive_lag <= 5.0
    print("targets met" if met else "TARGETS MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
