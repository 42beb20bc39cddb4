"""Status checks from learned durations versus fixed 10-second polling, in virtual time.

Drives the gateway's real planner (`gateway.polling.plan`, with `gateway.durations` learning
from each finished job as the pipeline does) over simulated jobs of three kinds of provider:

- "progress": queued, then running with a progress percentage (Sora's videos API);
- "phases": queued, then running, no percentage (fal's queue);
- "opaque": running until done, nothing else (a long-running operation: Veo on the Gemini API).

Each provider style has eight kinds of job (model, size, seconds), each with its own render time
(log-uniform 25 s to 8 min) and a spread of a few per cent around it (the same model making the
same size runs the same number of steps); queue waits are short and exponential with a long
tail (one job in twelve waits minutes). Totals run from about 30 s to over 10 minutes.

Jobs run one after another in a random order of kinds, so each kind's record is learned online
from nothing (its first jobs are planned without one). Prints status checks and detection lag
(upstream done -> gateway notices) for fixed 10-second polling, the previous progress-only
policy and the learned planner, and the median absolute error of the ETA shown to the app.

Also prints the planner on "known spreads" (each kind's true distributions, as perfect learning
would give them) and a sweep of LAG_WEIGHT, the planner's one trade-off between checks and lag,
learned and on known spreads.

Targets (issue 14): at most one fifth of fixed polling's checks, mean lag at most 3 s. On this
mix they are not reached together: learned, about 0.34x at 2.9 s; even on known spreads about a
quarter at 3 s. What limits it is how widely jobs of one kind end (a short job's exponential
queue wait spreads its end over tens of seconds, and an opaque provider shows nothing to narrow
it), not the learning (docs/architecture.md). Exits 1 while the targets are missed.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass

from gateway.durations import DurationSketch, LearnedDurations
from gateway.polling import LAG_WEIGHT, PollPolicy, ProgressTrack, likely_end, plan
from gateway.settings import Settings

FIXED_INTERVAL = 10.0
SWEEP = (0.5, 1.0, 2.0, 4.0, 8.0)
KNOWN_JOBS = 2000
STYLES = ("progress", "phases", "opaque")
KINDS_PER_STYLE = 8
Curve = Callable[[float], float]
CURVES: tuple[Curve, ...] = (
    lambda x: x,  # linear
    lambda x: x**1.6,  # slow start
    lambda x: 1 - (1 - x) ** 1.6,  # fast start
    lambda x: min(1.0, 1.08 * x) * 0.97 if x < 0.97 else 0.97 + (x - 0.97),  # plateau near the end
)


@dataclass(frozen=True)
class Kind:
    style: str
    render: float  # typical render seconds
    spread: float  # relative spread of render time (lognormal sigma)
    queue_mean: float  # mean of the ordinary queue wait
    curve: Curve


@dataclass(frozen=True)
class SimulatedJob:
    kind: int
    queued: float  # seconds in the provider's queue
    duration: float  # seconds from upstream creation to completed
    noise: float
    seed: int

    def status_at(self, style: str, t: float) -> tuple[str, int]:
        if t >= self.duration:
            return "completed", 100
        if t < self.queued:
            return ("in_progress" if style == "opaque" else "queued"), 0
        if style != "progress":
            return "in_progress", 0
        return "in_progress", self._progress(t)

    def _progress(self, t: float) -> int:
        x = (t - self.queued) / (self.duration - self.queued)
        jitter = random.Random(self.seed * 1_000_003 + int(t)).uniform(-self.noise, self.noise)
        return max(0, min(99, math.floor(100 * CURVES[self.seed % len(CURVES)](x) + jitter)))


def make_kinds(rng: random.Random) -> list[Kind]:
    return [
        Kind(
            style=style,
            render=math.exp(rng.uniform(math.log(25), math.log(480))),
            spread=rng.uniform(0.02, 0.06),
            queue_mean=rng.uniform(2, 20),
            curve=rng.choice(CURVES),
        )
        for style in STYLES
        for _ in range(KINDS_PER_STYLE)
    ]


def make_jobs(kinds: list[Kind], count: int, rng: random.Random) -> list[SimulatedJob]:
    jobs = []
    for index in range(count):
        kind_index = rng.randrange(len(kinds))
        kind = kinds[kind_index]
        queued = rng.expovariate(1 / kind.queue_mean)
        if rng.random() < 1 / 12:
            queued += rng.lognormvariate(math.log(90), 0.8)  # the long tail: a busy provider
        render = kind.render * rng.lognormvariate(0, kind.spread)
        jobs.append(SimulatedJob(kind_index, queued, queued + render, rng.uniform(0, 3), index))
    return jobs


@dataclass
class Result:
    checks: int
    lag: float
    eta_errors: list[float]  # |ETA - actual end| at each answer that carried an ETA
    first_eta_error: float | None


def _figures(results: list[Result], fixed_checks: int) -> str:
    checks = sum(r.checks for r in results) / fixed_checks
    return f"{checks:.3f}, {statistics.fmean(r.lag for r in results):.2f} s"


def run_learned(
    job: SimulatedJob, style: str, policy: PollPolicy, learned: LearnedDurations, lag_weight: float
) -> tuple[Result, LearnedDurations]:
    """The pipeline's loop: observe, plan, wait, check; at the end, learn what was observed."""
    t, checks = 0.0, 0
    status, progress = job.status_at(style, t)
    track = ProgressTrack().observe(t, progress, status)
    errors: list[float] = []
    first: float | None = None
    while True:
        step = plan(policy, track, learned, lag_weight=lag_weight)
        if step.eta is not None:
            errors.append(abs(step.eta - job.duration))
            first = errors[0] if first is None else first
        t += step.delay
        checks += 1
        status, progress = job.status_at(style, t)
        if status == "completed":
            break
        track = track.observe(t, progress, status)
    ended = likely_end(track, learned, t)  # it ended between the last two checks
    began = track.timed_start(ended)
    return Result(checks, t - job.duration, errors, first), learned.observe(ended, began=began)


def run_progress_only(job: SimulatedJob, style: str, policy: PollPolicy) -> Result:
    """The policy before learned durations: extrapolate progress, else check every 45 s."""
    t, checks = 0.0, 0
    status, progress = job.status_at(style, t)
    track = ProgressTrack().observe(t, progress, status)
    while status != "completed":
        t += policy.next_delay(track)
        checks += 1
        status, progress = job.status_at(style, t)
        track = track.observe(t, progress, status)
    return Result(checks, t - job.duration, [], None)


def run_fixed(job: SimulatedJob) -> Result:
    checks = math.ceil(job.duration / FIXED_INTERVAL)
    return Result(checks, checks * FIXED_INTERVAL - job.duration, [], None)


def summary(name: str, results: list[Result], fixed_checks: int) -> str:
    checks = sum(r.checks for r in results)
    lag = statistics.fmean(r.lag for r in results)
    return (
        f"{name:<26} checks {checks / len(results):6.2f}/job  ratio {checks / fixed_checks:5.3f}"
        f"  mean lag {lag:5.2f} s"
    )


def run_all(
    jobs: list[SimulatedJob],
    kinds: list[Kind],
    policy: PollPolicy,
    lag_weight: float,
    known: list[LearnedDurations] | None = None,
) -> list[Result]:
    """Every job in order, each kind's record learned from its finished jobs as they end,
    starting from nothing; or planned on `known` records, which stay as they are."""
    records = list(known) if known is not None else [LearnedDurations() for _ in kinds]
    results = []
    for job in jobs:
        result, learned = run_learned(job, kinds[job.kind].style, policy, records[job.kind], lag_weight)
        if known is None:
            records[job.kind] = learned
        results.append(result)
    return results


def known_records(kinds: list[Kind], rng: random.Random) -> list[LearnedDurations]:
    """Each kind's distributions as they are (2000 jobs each, counted alike, nothing decayed,
    every queue wait exact; an opaque provider's render time is its total, as it shows no
    start): the planner on these is what perfect learning would give, which tells the limits
    set by the jobs' own spread from the cost of learning."""
    samples: list[list[SimulatedJob]] = [[] for _ in kinds]
    for job in make_jobs(kinds, KNOWN_JOBS * len(kinds), rng):
        samples[job.kind].append(job)
    records = []
    for kind, jobs in zip(kinds, samples, strict=True):
        opaque = kind.style == "opaque"
        records.append(
            LearnedDurations(
                queue=DurationSketch.counting(0.0 if opaque else job.queued for job in jobs),
                render=DurationSketch.counting(
                    job.duration - (0.0 if opaque else job.queued) for job in jobs
                ),
                total=DurationSketch.counting(job.duration for job in jobs),
                jobs=len(jobs),
            )
        )
    return records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    # The default polling settings of a deployment (any account will do; none is contacted).
    defaults = Settings.from_env(
        {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "AIMLAPI_API_KEY": "k"}
    )
    policy = PollPolicy(defaults.poll_min_seconds, defaults.poll_max_seconds)
    rng = random.Random(args.seed)
    kinds = make_kinds(rng)
    jobs = make_jobs(kinds, args.jobs, rng)
    fixed = [run_fixed(job) for job in jobs]
    fixed_checks = sum(r.checks for r in fixed)
    learned = run_all(jobs, kinds, policy, LAG_WEIGHT)
    before = [run_progress_only(job, kinds[job.kind].style, policy) for job in jobs]

    durations = sorted(job.duration for job in jobs)
    print(f"jobs simulated             {len(jobs)} in {len(kinds)} kinds ({', '.join(STYLES)})")
    print(
        f"job durations              p5 {durations[len(jobs) // 20]:.0f} s, median {durations[len(jobs) // 2]:.0f} s,"
        f" p95 {durations[len(jobs) * 19 // 20]:.0f} s, max {durations[-1]:.0f} s"
    )
    print(
        f"policy                     min {policy.min_seconds:g} s, max {policy.max_seconds:g} s, lag weight {LAG_WEIGHT:g}"
    )
    print(summary("fixed 10 s", fixed, fixed_checks))
    print(summary("progress only (before)", before, fixed_checks))
    print(summary("learned", learned, fixed_checks))
    for style in STYLES:
        mine = [r for r, job in zip(learned, jobs, strict=True) if kinds[job.kind].style == style]
        theirs = sum(r.checks for r, job in zip(fixed, jobs, strict=True) if kinds[job.kind].style == style)
        print(summary(f"  learned, {style}", mine, theirs))
    errors = [e for r in learned for e in r.eta_errors]
    firsts = [r.first_eta_error for r in learned if r.first_eta_error is not None]
    print(
        f"ETA median abs error       {statistics.median(errors):.1f} s over every answer,"
        f" {statistics.median(firsts):.1f} s at the first"
    )
    known = known_records(kinds, random.Random(args.seed + 1))
    print(summary("planned on known spreads", run_all(jobs, kinds, policy, LAG_WEIGHT, known), fixed_checks))
    print("trade-off by lag weight       learned: ratio, lag    on known spreads: ratio, lag")
    for weight in SWEEP:
        swept = learned if weight == LAG_WEIGHT else run_all(jobs, kinds, policy, weight)
        ideal = run_all(jobs, kinds, policy, weight, known)
        print(f"  {weight:4g}{'':24}{_figures(swept, fixed_checks)}{'':11}{_figures(ideal, fixed_checks)}")
    ratio = sum(r.checks for r in learned) / fixed_checks
    lag = statistics.fmean(r.lag for r in learned)
    print(f"checks ratio learned/fixed {ratio:.3f}   (target <= 0.200)")
    print(f"mean detection lag         {lag:.2f} s   (target <= 3 s)")
    met = ratio <= 0.2 and lag <= 3.0
    print("targets met" if met else "TARGETS MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
