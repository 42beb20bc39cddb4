"""What orchestrators and activities pass each other: plain JSON dicts at the boundary,
these small frozen dataclasses inside."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from gateway.polling import PollPolicy, ProgressTrack
from gateway.providers.port import ProviderVideo

# How an activity's input parameter is annotated. Azure's Python worker accepts only a class as a
# binding annotation: `dict[str, Any]` is not one (Python 3.11+), and one refused function stops
# the whole app from indexing. So at run time the annotation is plain `dict` (what the worker
# reads), while the type checker sees its precise form; the dataclasses below take over right
# inside the activity.
if TYPE_CHECKING:
    ActivityInput = dict[str, Any]
else:
    ActivityInput = dict


# Failure codes the gateway itself gives a job (the upstream's own codes pass through as well).
CANCELLED = "cancelled"
TIMEOUT = "timeout"
INTERNAL_ERROR = "internal_error"
STORAGE_UNAVAILABLE = "storage_unavailable"
UPSTREAM_UNAVAILABLE = "upstream_unavailable"
UPSTREAM_ACCESS_DENIED = "upstream_access_denied"
UPSTREAM_JOB_NOT_FOUND = "upstream_job_not_found"
UPSTREAM_CANCELLED = "upstream_cancelled"
UPSTREAM_ERROR = "upstream_error"
VIDEO_GENERATION_FAILED = "video_generation_failed"
CONTENT_POLICY_VIOLATION = "content_policy_violation"
UPSTREAM_AMBIGUOUS = "upstream_ambiguous"
PROVIDER_UNAVAILABLE = "provider_unavailable"
NO_ROUTE_AVAILABLE = "no_route_available"
# Set by the maintenance sweep for jobs their orchestration left unfinished (gateway.retention).
ORCHESTRATION_FAILED = "orchestration_failed"
ORCHESTRATION_LOST = "orchestration_lost"
# Failures before the provider accepted the job that are no fault of the request: the app
# gets its slot and money back (a refusal of the request itself, e.g. content policy, is
# charged as the plan's policy says: gateway.charges).
REFUNDED_CREATE_FAILURES = frozenset(
    {UPSTREAM_ACCESS_DENIED, UPSTREAM_AMBIGUOUS, PROVIDER_UNAVAILABLE, NO_ROUTE_AVAILABLE}
)

# What an app reads in `error.message`, by code. Only these sentences are ever stored on a job:
# never the upstream's text, an exception's or an activity's name.
FAILURE_MESSAGES: dict[str, str] = {
    CANCELLED: "The video was cancelled.",
    TIMEOUT: "The video was not ready in time.",
    INTERNAL_ERROR: "The video could not be finished because of an internal error. Please try again.",
    STORAGE_UNAVAILABLE: "The video could not be stored because storage was unavailable. Please try again.",
    UPSTREAM_UNAVAILABLE: "The video service was unavailable. Please try again later.",
    UPSTREAM_ACCESS_DENIED: "The video service refused the gateway's access. Please contact the operator.",
    UPSTREAM_JOB_NOT_FOUND: "The video service no longer has this video. Please try again.",
    UPSTREAM_CANCELLED: "The video service cancelled this video before it was finished.",
    UPSTREAM_ERROR: "The video service refused to make this video.",
    VIDEO_GENERATION_FAILED: "The video service could not generate this video.",
    CONTENT_POLICY_VIOLATION: "The request was refused by the content policy. Change the prompt or image.",
    "remix_source_not_found": "The video to remix no longer exists.",
    UPSTREAM_AMBIGUOUS: (
        "The video service did not confirm whether it accepted this video, and it cannot be asked. "
        "It was not retried, so you are not charged twice; please try again."
    ),
    PROVIDER_UNAVAILABLE: "The video service for this model is not available. Please contact the operator.",
    NO_ROUTE_AVAILABLE: "None of the video services for this model could take the video. Please try again later.",
    "remix_not_supported": "The video service of this video cannot remix it.",
    "image_input_not_supported": "The video service of this model does not take an input image.",
    ORCHESTRATION_FAILED: "The video's processing ended before the video was finished; please create it again.",
    ORCHESTRATION_LOST: "The video's processing was lost and cannot resume; please create it again.",
}
DEFAULT_FAILURE_MESSAGE = "The video could not be generated."
ACTIVE_STATUSES = frozenset({"queued", "in_progress"})


# What an upstream's own failure code may look like to be shown to apps as `error.code`: a word
# like `content_policy_violation`. Anything else (a sentence, a path, a status line) is the
# upstream's text, not a code, and reads as `upstream_error`.
_CODE_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def failure_code(code: str | None) -> str:
    """The code a job may carry for `code`: the gateway's own, or an upstream's that is a plain
    word; anything else, or nothing, is `upstream_error`."""
    if code is None or _CODE_SHAPE.fullmatch(code) is None:
        return UPSTREAM_ERROR
    return code


def failure_message(code: str) -> str:
    """The app-facing sentence for a failure code: the one mapping from a code to what a job's
    `error.message` says. Unknown codes (an upstream's own) read the default sentence."""
    return FAILURE_MESSAGES.get(code, DEFAULT_FAILURE_MESSAGE)


def rejection_code(status: int | None, upstream_code: str, *, keep_upstream_code: bool) -> str:
    """A job's failure code for a permanent upstream answer. Access problems are the gateway's
    (its identity or key), whatever the upstream calls them; a create refusal keeps the upstream's
    code (content policy, ...); for an existing job, 404 means the upstream lost it."""
    if status in (401, 403):
        return UPSTREAM_ACCESS_DENIED
    if keep_upstream_code:
        return failure_code(upstream_code)
    return UPSTREAM_JOB_NOT_FOUND if status == 404 else UPSTREAM_ERROR


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
    """Where the upstream job stands. `rejected` means the upstream refused it for good;
    `cancelled` that the job carries a cancel mark (or is gone), so nothing more may be done."""

    upstream_id: str | None
    status: str
    progress: int = 0
    error_code: str | None = None
    # The upstream's own words. No longer filled (they go to the log, never into the task hub);
    # kept so that histories recorded by older code, whose results carry it, still replay.
    error_message: str | None = None
    rejected: bool = False
    retry_after: float | None = None  # set when the upstream throttled us: wait, then ask again
    track: dict[str, Any] | None = None  # the ProgressTrack after this observation
    cancelled: bool = False
    # The create failed without making anything and the job moved to its model's next route:
    # the orchestration reserves a turn there and creates again.
    rerouted: bool = False
    # With a throttled answer: how long the job may wait out throttling on this route before it
    # moves to its model's next route (None: no next route, or no limit).
    max_wait: float | None = None
    # Unix time of the next status check the planner chose (gateway.polling.plan); None in
    # histories recorded before it, where the orchestrator times the check from the track.
    check_at: float | None = None

    @property
    def is_throttled(self) -> bool:
        return self.retry_after is not None

    @property
    def finished(self) -> bool:
        """Final: anything but queued / in_progress (upstream `cancelled` included), a refusal,
        or a cancel mark. A throttled answer says nothing about the job: not final."""
        if self.rejected or self.cancelled:
            return True
        return not self.is_throttled and self.status not in ACTIVE_STATUSES

    @classmethod
    def throttled(
        cls, upstream_id: str | None, retry_after: float | None, max_wait: float | None = None
    ) -> UpstreamStatus:
        return cls(
            upstream_id=upstream_id,
            status="throttled",
            retry_after=max(retry_after or 0.0, 1.0),
            max_wait=max_wait,
        )

    @classmethod
    def refused(cls, upstream_id: str | None, code: str) -> UpstreamStatus:
        return cls(upstream_id=upstream_id, status="failed", error_code=code, rejected=True)

    @classmethod
    def moved_on(cls) -> UpstreamStatus:
        return cls(upstream_id=None, status="queued", rerouted=True)

    @classmethod
    def job_cancelled(cls, upstream_id: str | None) -> UpstreamStatus:
        return cls(upstream_id=upstream_id, status="failed", error_code=CANCELLED, cancelled=True)

    @classmethod
    def of(cls, video: ProviderVideo, track: ProgressTrack, check_at: float | None = None) -> UpstreamStatus:
        return cls(
            upstream_id=video.id,
            status=video.status,
            progress=video.progress or 0,
            error_code=None if video.error_code is None else failure_code(video.error_code),
            track=track.to_dict(),
            check_at=check_at,
        )

    @property
    def progress_track(self) -> ProgressTrack:
        return ProgressTrack.from_dict(self.track)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UpstreamStatus:
        return cls(**_known_fields(cls, data))


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
    """Input of fail_job: which job and why. The message the app reads is looked up from the
    code where the record is written (`failure_message`), so no other text can reach it."""

    job: JobRef
    code: str
    # The charge policy's answer (gateway.charges): True, its reserved money becomes a charge;
    # False, slot and money go back. None (histories from before budgets): charged unless the
    # slot was already released.
    charged: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**self.job.to_dict(), "code": self.code, "charged": self.charged}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobFailure:
        charged = data.get("charged")
        return cls(
            job=JobRef.from_dict(data),
            code=str(data["code"]),
            charged=None if charged is None else bool(charged),
        )


@dataclass(frozen=True)
class StoredAssets:
    """Blob names only: whoever needs a URL (the API's Video object, a webhook) signs one when it
    sends it, so no SAS URL is ever kept, in the task hub's history or anywhere else."""

    video_blob: str
    thumbnail_blob: str | None
    video_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoredAssets:
        # Results recorded by older code also carry `video_url` (a SAS URL): ignored on replay.
        return cls(**_known_fields(cls, data))


@dataclass(frozen=True)
class StoreOutcome:
    """What store_video_assets did: `stored` (with `assets`), `cancelled` (nothing left behind),
    `throttled` (ask again after `retry_after`) or `failed` for good (with `error_code`)."""

    status: str
    assets: StoredAssets | None = None
    retry_after: float | None = None
    error_code: str | None = None

    @classmethod
    def stored(cls, assets: StoredAssets) -> StoreOutcome:
        return cls(status="stored", assets=assets)

    @classmethod
    def cancelled(cls) -> StoreOutcome:
        return cls(status="cancelled")

    @classmethod
    def throttled(cls, retry_after: float | None) -> StoreOutcome:
        return cls(status="throttled", retry_after=max(retry_after or 0.0, 1.0))

    @classmethod
    def failed(cls, code: str) -> StoreOutcome:
        return cls(status="failed", error_code=code)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "assets": None if self.assets is None else self.assets.to_dict(),
            "retry_after": self.retry_after,
            "error_code": self.error_code,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StoreOutcome:
        assets = data.get("assets")
        return cls(
            status=str(data["status"]),
            assets=None if assets is None else StoredAssets.from_dict(assets),
            retry_after=data.get("retry_after"),
            error_code=data.get("error_code"),
        )


@dataclass(frozen=True)
class WebhookDelivery:
    job: JobRef
    event_id: str

    def to_dict(self) -> dict[str, Any]:
        return {**self.job.to_dict(), "event_id": self.event_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WebhookDelivery:
        return cls(job=JobRef.from_dict(data), event_id=str(data["event_id"]))


@dataclass(frozen=True)
class BudgetCrossing:
    """An app's budget window crossed its threshold: where to announce it (the webhook URL of the
    create that crossed it), and the waits between delivery attempts."""

    app_id: str
    window: str  # "day" or "month"
    start: str  # the window's key: "2026-11" or "2026-11-27"
    url: str
    delays: tuple[float, ...] = ()

    @property
    def event_id(self) -> str:
        # The same across attempts (and for a second announcement of the same window, which the
        # quota never makes), so a receiver deduplicates on it.
        return f"evt_budget_{self.app_id}_{self.window}_{self.start}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "app_id": self.app_id,
            "window": self.window,
            "start": self.start,
            "url": self.url,
            "delays": list(self.delays),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BudgetCrossing:
        return cls(
            app_id=str(data["app_id"]),
            window=str(data["window"]),
            start=str(data["start"]),
            url=str(data["url"]),
            delays=tuple(float(delay) for delay in data.get("delays", ())),
        )


def _known_fields(cls: type[Any], data: dict[str, Any]) -> dict[str, Any]:
    """`data` without the keys `cls` does not have: an activity result recorded in the history
    of an in-flight orchestration by older code may carry fields this code dropped."""
    known = {field.name for field in fields(cls)}
    return {key: value for key, value in data.items() if key in known}
