"""The provider port: what the gateway asks of any video service, and what it gets back.

Activities and the creation logic see only `VideoProvider`. Each adapter (one module under
`gateway.providers`) speaks one service's wire protocol and maps it onto these types:

- statuses are the gateway's four: `queued`, `in_progress`, `completed`, `failed` (plus
  `cancelled` where a provider reports one); progress is 0-100 or None when the provider has none;
- failures are `gateway.errors` classes: `UpstreamThrottled` (429, wait and ask again),
  `UpstreamTransientError` (5xx, resets, timeouts: retry), `UpstreamRejectedError` (a permanent
  answer, with the provider's own code and message), `UpstreamAmbiguousError` (a create that may
  or may not have reached the provider: never retried, see gateway.creation);
- what a provider cannot do is said by its `Capabilities`, never by raising NotImplementedError
  from a call the caller could have known to avoid.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

STATUSES = frozenset({"queued", "in_progress", "completed", "failed", "cancelled"})


@dataclass(frozen=True)
class Capabilities:
    """What a provider supports beyond create, status and download."""

    image_input: bool = False  # the model can start from a reference image
    remix: bool = False  # a new video from a finished one, with a new prompt
    delete: bool = False  # the provider deletes (or cancels) a job on request
    find_recent: bool = False  # lists its recent jobs, so an interrupted create can be adopted
    thumbnail: bool = False  # serves a still image besides the video


@dataclass(frozen=True)
class PlainAsset:
    """A finished asset at a URL that anyone holding it can read, with no credential: what Blob
    Storage can fetch by itself (gateway.blobs copies it server-side, no byte through the function)."""

    url: str
    size: int  # bytes, as the URL's server reported them (storage copies it in ranges)


@dataclass(frozen=True)
class ProviderAccount:
    """One configured provider account, from the PROVIDERS setting: which adapter (`kind`), where,
    and with which key. The key is a secret: never in repr, logs, job records or messages."""

    name: str  # the account's id, e.g. "aimlapi" or "azure-openai-eastus"
    kind: str  # the adapter module, e.g. "aimlapi"
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    options: Mapping[str, str] = field(default_factory=dict)  # adapter-specific, never secret


@dataclass(frozen=True)
class ReferenceFile:
    filename: str
    content: bytes
    content_type: str


@dataclass(frozen=True)
class VideoRequest:
    """One video to make, in the catalog's resolved terms.

    `model` is the provider's own model name (or deployment). Shape is given both ways, since
    providers speak either pixels (`size`, "1280x720") or ratio and resolution ("16:9", "720p");
    the catalog fills all three for the model, and an adapter sends what its protocol takes.
    """

    model: str
    prompt: str
    seconds: int
    size: str
    aspect_ratio: str
    resolution: str
    reference: ReferenceFile | None = None
    # Per-request options (gateway.video_options: negative_prompt, generate_audio,
    # person_generation), only those the catalog let through for this route's adapter.
    options: Mapping[str, str | bool] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderVideo:
    """A provider's job as the gateway acts on it."""

    id: str
    status: str
    progress: int | None = None
    # Jobs ahead of this one while it waits in the provider's queue (0 = next); None when unknown.
    queue_position: int | None = None
    created_at: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    # What the job was made from, for adopting an interrupted create (providers that list jobs).
    prompt: str | None = None
    model: str | None = None
    seconds: str | None = None
    size: str | None = None
    remixed_from_video_id: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")


class VideoProvider(Protocol):
    """One configured provider account (a service plus its endpoint and credential)."""

    @property
    def name(self) -> str:
        """The account's id in the catalog (jobs remember it)."""
        ...

    @property
    def capabilities(self) -> Capabilities: ...

    def create(self, request: VideoRequest) -> ProviderVideo: ...

    def get(self, video_id: str) -> ProviderVideo: ...

    def open_asset(self, video_id: str, variant: str = "video") -> AbstractContextManager[Iterator[bytes]]:
        """The finished asset ("video" or "thumbnail") as a stream of chunks, closed on exit."""
        ...

    def plain_asset(self, video_id: str, variant: str = "video") -> PlainAsset | None:
        """Where the finished asset can be read without any credential (a provider's CDN link),
        or None when only `open_asset` can read it (the content needs the account's key).

        A method, not a Capability: the answer is per asset (a link per job, found by asking the
        provider), and None says "cannot" without a flag that would have to agree with it. Errors
        as for `open_asset` (a link that answers 404 is the upstream's permanent refusal)."""
        ...

    def delete(self, video_id: str) -> bool:
        """Delete or cancel the job; False when it was already gone. Only with `capabilities.delete`."""
        ...

    def remix(self, video_id: str, prompt: str) -> ProviderVideo:
        """Only with `capabilities.remix`."""
        ...

    def recent(self, limit: int = 100) -> list[ProviderVideo]:
        """The newest jobs, newest first. Only with `capabilities.find_recent`."""
        ...

    def close(self) -> None: ...


# Every adapter module exposes `build: ProviderFactory` (see gateway.providers.registry).
ProviderFactory = Callable[[ProviderAccount], VideoProvider]
