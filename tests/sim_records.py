"""What the provider simulator recorded of the jobs made at it (GET /_sim/created).

Tests share simulators, so each asks about its own jobs by a marker in their prompts.
"""

from __future__ import annotations

from typing import Any

import requests


def sim_created(simulator_url: str, marker: str) -> dict[str, Any]:
    """The upstream creates whose prompt contains `marker`, in any protocol: `jobs_created`, and
    `options`, the provider-native option fields each create carried."""
    answer = requests.get(f"{simulator_url}/_sim/created", params={"prompt_contains": marker}, timeout=5)
    answer.raise_for_status()
    created: dict[str, Any] = answer.json()
    return created
