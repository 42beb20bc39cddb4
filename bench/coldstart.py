"""Cold start: what importing function_app costs over a bare Durable Functions app.

Each sample is a fresh interpreter with a clean environment (no app settings), as a new worker
is: it times `import function_app` and reads its peak RSS, and, in its own fresh interpreter,
the baseline that imports azure.functions and azure.durable_functions and builds a bare DFApp.
The two alternate so both see the same machine load; the medians and their ratios are printed.
Target: function_app within 1.2x of the baseline, in time and in memory.

    .venv/bin/python -m bench.coldstart [runs]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.2
DEFAULT_RUNS = 9

# Packages that cost the most to import and that no function needs to be indexed: each one
# loaded by `import function_app` is named in the report, so the cause of a regression shows.
WATCHED = (
    "azure.storage.blob",
    "azure.identity",
    "msal",
    "cryptography",
    "azure.data.tables",
    "azure.core",
    "requests",
    "PIL",
    "jsonschema",
    "imageio_ffmpeg",
)
# Both programs time only their imports: the interpreter's own start is the same for both.
_MEASURE = """
import json, resource, sys, time
started = time.perf_counter()
{body}
elapsed = time.perf_counter() - started
loaded = [name for name in {watched!r} if name in sys.modules]
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": elapsed, "peak_rss_kib": rss, "loaded": loaded}}))
"""
BASELINE = """
import azure.durable_functions as df
import azure.functions as func
app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
"""
GATEWAY = """
import function_app
"""


@dataclass(frozen=True)
class Sample:
    seconds: float
    peak_rss_kib: int
    loaded: tuple[str, ...] = ()


def clean_environment() -> dict[str, str]:
    """What a fresh worker has before app settings matter: a path, a home, nothing of ours."""
    keep = ("PATH", "HOME", "LANG", "SYSTEMROOT")
    env = {key: os.environ[key] for key in keep if key in os.environ}
    env["PYTHONHASHSEED"] = "0"
    return env


def measure(body: str) -> Sample:
    completed = subprocess.run(
        [sys.executable, "-c", _MEASURE.format(body=body.strip(), watched=WATCHED)],
        cwd=PROJECT_DIR,
        env=clean_environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    values = json.loads(completed.stdout.strip().splitlines()[-1])
    return Sample(float(values["seconds"]), int(values["peak_rss_kib"]), tuple(values["loaded"]))


def median_sample(samples: list[Sample]) -> Sample:
    return Sample(
        statistics.median(s.seconds for s in samples),
        int(statistics.median(s.peak_rss_kib for s in samples)),
        samples[-1].loaded,
    )


def run(runs: int) -> tuple[Sample, Sample]:
    measure(GATEWAY)  # warm the bytecode caches once, so no run pays for compiling
    baseline: list[Sample] = []
    gateway: list[Sample] = []
    for _ in range(runs):
        baseline.append(measure(BASELINE))
        gateway.append(measure(GATEWAY))
    return median_sample(baseline), median_sample(gateway)


def report(baseline: Sample, gateway: Sample, runs: int) -> str:
    time_ratio = gateway.seconds / baseline.seconds
    rss_ratio = gateway.peak_rss_kib / baseline.peak_rss_kib
    verdict = "ok" if max(time_ratio, rss_ratio) <= TARGET_RATIO else f"over the {TARGET_RATIO}x target"
    return "\n".join(
        [
            f"cold start, median of {runs} fresh interpreters each",
            f"  baseline (azure.functions + azure.durable_functions + DFApp): "
            f"{baseline.seconds * 1000:7.1f} ms  {baseline.peak_rss_kib / 1024:6.1f} MiB peak RSS",
            f"  import function_app:                                            "
            f"{gateway.seconds * 1000:7.1f} ms  {gateway.peak_rss_kib / 1024:6.1f} MiB peak RSS",
            f"  ratio: time {time_ratio:.2f}x, memory {rss_ratio:.2f}x  ({verdict})",
            "  heavy packages loaded by function_app only: "
            + (", ".join(sorted(set(gateway.loaded) - set(baseline.loaded))) or "none"),
        ]
    )


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_RUNS
    baseline, gateway = run(runs)
    print(report(baseline, gateway, runs))


if __name__ == "__main__":
    main()
