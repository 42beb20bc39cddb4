"""Everything the handlers share: current config, jobs, tokens, quota, faults, counters, media."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sorasim.config import SimulatorConfig
from sorasim.errors import ApiError
from sorasim.faults import FaultInjector
from sorasim.jobs import Job, JobStore, VideoSpec, new_job_id
from sorasim.media import MediaLibrary
from sorasim.quota import RollingWindowQuota
from sorasim.stats import Stats
from sorasim.tokens import TokenIssuer


@dataclass(frozen=True)
class Created:
    """One admitted create: its prompt and the provider-native option fields it carried
    (e.g. gemini's `negativePrompt`, fal's `generate_audio`), as sent; empty when none."""

    prompt: str
    options: Mapping[str, Any] = field(default_factory=dict)


class SimulatorState:
    def __init__(
        self,
        config: SimulatorConfig,
        media: MediaLibrary,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config_lock = threading.Lock()
        self._config = config
        self.media = media
        self.clock = clock
        self.jobs = JobStore()
        self.tokens = TokenIssuer()
        self.quota = RollingWindowQuota()
        self.faults = FaultInjector(config.seed)
        self.stats = Stats()
        # Every create ever admitted, in order, so tests sharing one simulator can find their own.
        self.created: list[Created] = []

    @property
    def config(self) -> SimulatorConfig:
        with self._config_lock:
            return self._config

    def update_config(self, changes: Mapping[str, Any]) -> SimulatorConfig:
        """Apply runtime knob changes; ValueError leaves the config as it was."""
        with self._config_lock:
            self._config = self._config.with_runtime_changes(changes)
            return self._config

    def admit(
        self,
        spec: VideoSpec,
        remixed_from_video_id: str | None = None,
        *,
        options: Mapping[str, Any] | None = None,
    ) -> Job:
        """Create a job if the creation quota has room, else raise the 429 Azure would send.
        `options`: the provider-native option fields the create carried, kept for /_sim/created."""
        config = self.config
        now = self.clock()
        wait = self.quota.try_acquire(config.creates_per_minute, now)
        if wait is not None:
            self.stats.increment("creates_rejected")
            raise ApiError(
                429,
                f"Requests to the Videos API have exceeded the simulated limit of "
                f"{config.creates_per_minute} video creations per minute. "
                f"Please retry after {wait} second{'s' if wait != 1 else ''}.",
                code="rate_limit_exceeded",
                type_="requests",
                headers={"Retry-After": str(wait)},
            )
        job = Job(
            id=new_job_id(),
            spec=spec,
            created_at=now,
            job_seconds=config.job_seconds,
            remixed_from_video_id=remixed_from_video_id,
        )
        self.jobs.add(job)
        self.created.append(Created(spec.prompt, dict(options or {})))
        self.stats.increment("jobs_created")
        if remixed_from_video_id is not None:
            self.stats.increment("remixes_created")
        return job

    def reset(self) -> None:
        """Forget jobs, counters and quota usage; issued tokens stay valid."""
        self.jobs.clear()
        self.created.clear()
        self.stats.reset()
        self.quota.clear()
        self.faults = FaultInjector(self.config.seed)
