"""The in-memory job store; a job's visible state is derived from the wall clock when read."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from typing import Any, Literal

from sorasim.lifecycle import Phase, phase_at

RETENTION_SECONDS = 24 * 3600
"""How long a completed video's content stays downloadable (Azure keeps outputs 24 h)."""

FAIL_MARKER = "#sim:fail"


@dataclass(frozen=True)
class VideoSpec:
    prompt: str
    model: str
    seconds: str
    size: str


@dataclass(frozen=True)
class Job:
    id: str
    spec: VideoSpec
    created_at: float
    job_seconds: float
    """Fixed at creation, so changing the knob at runtime does not move running jobs."""
    remixed_from_video_id: str | None = None

    @property
    def fails(self) -> bool:
        return FAIL_MARKER in self.spec.prompt

    def phase(self, now: float) -> Phase:
        return phase_at(now - self.created_at, self.job_seconds, self.fails)

    def expires_at(self, now: float) -> float | None:
        phase = self.phase(now)
        if phase.status != "completed" or phase.finished_after is None:
            return None
        return self.created_at + phase.finished_after + RETENTION_SECONDS

    def to_video(self, now: float) -> dict[str, Any]:
        """The OpenAI `Video` object for this job as seen at `now`."""
        phase = self.phase(now)
        completed_at = None
        if phase.status == "completed" and phase.finished_after is not None:
            completed_at = int(self.created_at + phase.finished_after)
        expires_at = self.expires_at(now)
        error = None
        if phase.status == "failed":
            error = {
                "code": "video_generation_failed",
                "message": "Video generation failed part-way (simulated by the #sim:fail prompt marker).",
            }
        return {
            "id": self.id,
            "object": "video",
            "created_at": int(self.created_at),
            "completed_at": completed_at,
            "expires_at": None if expires_at is None else int(expires_at),
            "error": error,
            "model": self.spec.model,
            "progress": phase.progress,
            "prompt": self.spec.prompt,
            "remixed_from_video_id": self.remixed_from_video_id,
            "seconds": self.spec.seconds,
            "size": self.spec.size,
            "status": phase.status,
        }


def new_job_id() -> str:
    return "video_" + secrets.token_hex(24)


class UnknownCursor(Exception):
    """The `after` id of a list request names no job."""


class JobStore:
    """Jobs in creation order; safe to use from the server loop and from test threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}

    def add(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.id] = job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def delete(self, job_id: str) -> bool:
        with self._lock:
            return self._jobs.pop(job_id, None) is not None

    def clear(self) -> None:
        with self._lock:
            self._jobs.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)

    def page(self, *, after: str | None, limit: int, order: Literal["asc", "desc"]) -> tuple[list[Job], bool]:
        """Up to `limit` jobs following `after` in `order`, and whether more follow."""
        with self._lock:
            ordered = list(self._jobs.values())
        if order == "desc":
            ordered.reverse()
        start = 0
        if after is not None:
            position = next((index for index, job in enumerate(ordered) if job.id == after), None)
            if position is None:
                raise UnknownCursor(after)
            start = position + 1
        chosen = ordered[start : start + limit]
        return chosen, start + limit < len(ordered)
