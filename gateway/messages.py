"""What orchestrators and activities pass each other: plain JSON dicts at the boundary,
these small frozen dataclasses inside."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from gateway.polling import PollPolicy, ProgressTrack
from gateway.sora import UpstreamVideo

# How an activity's input parameter is annotated. Azure's Python worker accepts only a class as a
# binding annotation: `dict[str, Any]` is not one (Python 3.11+), and one refused function stops
# the whole app from indexing. So at run time the annotation is plain `dict` (what the worker
# reads), while the type checker sees its precise form; the dataclasses below take over right
# inside the activity.
if TYPE_CHECKING:
    ActivityInput = dict[str, Any]
else:
    ActivityInput = dict


@dataclass(frozen=True)
class JobRef:
    app_id: str
    job_id: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobRef:
        return cls(app_id=str(data["app_id"]), job_id=str(data["job_id"]))


@dataclass(frozen=True)
class UpstreamStatus:
    """Where the upstream job stands. `rejected` means the upstream refused it for good."""

    upstream_id: str | None
    status: str
    progress: int = 0
    error_code: str | None = None
    error_message: str | None = None
    rejected: bool = False
    retry_after: float | None = None  # set when the upstream throttled us: wait, then ask again
    track: dict[str, Any] | None = None  # the ProgressTrack after this observation

    @property
    def finished(self) -> bool:
        return self.rejected or self.status in ("completed", "failed")

    @classmethod
    def throttled(cls, upstream_id: str | None, retry_after: float | None) -> UpstreamStatus:
        return cls(upstream_id=upstream_id, status="throttled", retry_after=max(retry_after or 0.0, 1.0))

    @classmethod
    def of(cls, video: UpstreamVideo, track: ProgressTrack) -> UpstreamStatus:
        return cls(
            upstream_id=video.id,
            status=video.status,
            progress=video.progress,
            error_code=video.error_code,
            error_message=video.error_message,
            track=track.to_dict(),
        )

    @property
    def progress_track(self) -> ProgressTrack:
        return ProgressTrack.from_dict(self.track)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UpstreamStatus:
        return cls(**data)


@dataclass(frozen=True)
class UpstreamJobRef:
    job: JobRef
    upstream_id: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.job.to_dict(), "upstream_id": self.upstream_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UpstreamJobRef:
        return cls(job=JobRef.from_dict(data), upstream_id=str(data["upstream_id"]))


@dataclass(frozen=True)
class CreateRequest:
    """Input of the create activity: which job, and the policy that times its status checks."""

    job: JobRef
    poll: PollPolicy

    def to_dict(self) -> dict[str, Any]:
        return {**self.job.to_dict(), "poll": self.poll.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CreateRequest:
        return cls(job=JobRef.from_dict(data), poll=PollPolicy.from_dict(data["poll"]))


@dataclass(frozen=True)
class StatusCheck:
    """Input of a status check: which upstream job, what was seen of it so far, and the policy."""

    upstream: UpstreamJobRef
    track: ProgressTrack
    poll: PollPolicy

    def to_dict(self) -> dict[str, Any]:
        return {**self.upstream.to_dict(), "track": self.track.to_dict(), "poll": self.poll.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StatusCheck:
        return cls(
            upstream=UpstreamJobRef.from_dict(data),
            track=ProgressTrack.from_dict(data.get("track")),
            poll=PollPolicy.from_dict(data["poll"]),
        )


@dataclass(frozen=True)
class JobFailure:
    job: JobRef
    code: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.job.to_dict(), "code": self.code, "message": self.message}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobFailure:
        return cls(job=JobRef.from_dict(data), code=str(data["code"]), message=str(data["message"]))


@dataclass(frozen=True)
class StoredAssets:
    video_blob: str
    thumbnail_blob: str | None
    video_bytes: int
    video_url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoredAssets:
        return cls(**data)


@dataclass(frozen=True)
class WebhookDelivery:
    job: JobRef
    event_id: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.job.to_dict(), "event_id": self.event_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WebhookDelivery:
        return cls(job=JobRef.from_dict(data), event_id=str(data["event_id"]))
