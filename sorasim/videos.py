"""Handlers of the Azure OpenAI v1 videos API (`/openai/v1/videos...`)."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

from aiohttp import web

from sorasim.errors import ApiError, invalid_value, video_not_found
from sorasim.forms import read_fields
from sorasim.jobs import Job, UnknownCursor
from sorasim.media import MediaError, PaddedVideo, pad_video
from sorasim.params import check_content_policy, parse_create, parse_remix_prompt
from sorasim.state import SimulatorState

CHUNK_BYTES = 256 * 1024
_ZEROS = memoryview(bytes(1024 * 1024))

DEFAULT_LIST_LIMIT = 20
MAX_LIST_LIMIT = 100
VARIANTS = ("video", "thumbnail", "spritesheet")


class VideosApi:
    def __init__(self, state: SimulatorState) -> None:
        self._state = state

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/openai/v1/videos", self.create)
        app.router.add_get("/openai/v1/videos", self.list)
        app.router.add_get("/openai/v1/videos/{video_id}", self.retrieve)
        app.router.add_delete("/openai/v1/videos/{video_id}", self.delete)
        app.router.add_post("/openai/v1/videos/{video_id}/remix", self.remix)
        app.router.add_get("/openai/v1/videos/{video_id}/content", self.content, allow_head=False)

    async def create(self, request: web.Request) -> web.Response:
        parsed = parse_create(await read_fields(request))
        self._check_content_policy(parsed.spec.prompt)
        job = self._state.admit(parsed.spec)
        return web.json_response(job.to_video(self._state.clock()))

    async def retrieve(self, request: web.Request) -> web.Response:
        job = self._job(request)
        video = job.to_video(self._state.clock())
        headers: dict[str, str] = {}
        if video["status"] in ("queued", "in_progress"):
            # The official SDK's poll() waits this long between looks.
            headers["openai-poll-after-ms"] = str(_poll_interval_ms(job))
        return web.json_response(video, headers=headers)

    async def list(self, request: web.Request) -> web.Response:
        limit = _list_limit(request.query.get("limit"))
        order = _list_order(request.query.get("order"))
        after = request.query.get("after") or None
        try:
            jobs, has_more = self._state.jobs.page(after=after, limit=limit, order=order)
        except UnknownCursor:
            raise invalid_value("after", f"No video with id '{after}' to list after.") from None
        now = self._state.clock()
        return web.json_response(
            {
                "object": "list",
                "data": [job.to_video(now) for job in jobs],
                "first_id": jobs[0].id if jobs else None,
                "last_id": jobs[-1].id if jobs else None,
                "has_more": has_more,
            }
        )

    async def delete(self, request: web.Request) -> web.Response:
        video_id = request.match_info["video_id"]
        # Removing an unfinished job is what stops it: its state only exists in the store.
        if not self._state.jobs.delete(video_id):
            raise video_not_found(video_id)
        self._state.stats.increment("jobs_deleted")
        return web.json_response({"id": video_id, "object": "video.deleted", "deleted": True})

    async def remix(self, request: web.Request) -> web.Response:
        source = self._job(request)
        prompt = parse_remix_prompt(await read_fields(request))
        status = source.phase(self._state.clock()).status
        if status != "completed":
            raise ApiError(
                409,
                f"Video '{source.id}' is {status}; only completed videos can be remixed.",
                code="video_not_ready",
                param="video_id",
            )
        self._check_content_policy(prompt)
        job = self._state.admit(dataclasses.replace(source.spec, prompt=prompt), source.id)
        return web.json_response(job.to_video(self._state.clock()))

    async def content(self, request: web.Request) -> web.StreamResponse:
        job = self._job(request)
        variant = request.query.get("variant", "video")
        if variant not in VARIANTS:
            raise invalid_value("variant", f"Invalid value: '{variant}'. Supported values are: {VARIANTS}.")
        self._require_downloadable(job)
        size, seconds = job.spec.size, int(job.spec.seconds)
        try:
            path = await asyncio.to_thread(self._asset, variant, size, seconds)
        except MediaError as error:
            message = f"Could not render the video: {error}"
            raise ApiError(500, message, code="server_error", type_="server_error") from error
        # Counted before the body goes out: a client that has read every byte must see the count.
        self._state.stats.increment("downloads")
        if variant == "video":
            return await stream_video(request, pad_video(path, self._state.config.video_bytes))
        body = await asyncio.to_thread(path.read_bytes)
        return web.Response(body=body, content_type="image/jpeg")

    def _asset(self, variant: str, size: str, seconds: int) -> Path:
        media = self._state.media
        if variant == "video":
            return media.video(size, seconds)
        if variant == "thumbnail":
            return media.thumbnail(size)
        return media.spritesheet(size, seconds)

    def _job(self, request: web.Request) -> Job:
        video_id = request.match_info["video_id"]
        job = self._state.jobs.get(video_id)
        if job is None:
            raise video_not_found(video_id)
        return job

    def _check_content_policy(self, prompt: str) -> None:
        try:
            check_content_policy(prompt)
        except ApiError:
            self._state.stats.increment("creates_blocked")
            raise

    def _require_downloadable(self, job: Job) -> None:
        now = self._state.clock()
        status = job.phase(now).status
        if status == "failed":
            raise ApiError(
                404, f"Video '{job.id}' failed; it has no content.", code="video_generation_failed"
            )
        if status != "completed":
            # OpenAI answers 404 (not 409) while a video is still being generated.
            raise ApiError(
                404,
                f"Video is not ready yet, use GET /v1/videos/{job.id} to check status.",
                code="video_not_ready",
            )
        expires_at = job.expires_at(now)
        if expires_at is not None and now >= expires_at:
            raise ApiError(404, f"The content of video '{job.id}' has expired.", code="video_expired")


async def stream_video(request: web.Request, padded: PaddedVideo) -> web.StreamResponse:
    """Send the MP4 then its padding chunk by chunk, so any size streams in bounded memory. One
    `Range: bytes=START-[END]` is honoured (206), as CDNs and storage do: the gateway asks for
    one byte to learn a link's size, and Blob Storage reads a copy source in ranges."""
    total = padded.total_bytes
    wanted = _byte_range(request.headers.get("Range"), total)
    if wanted == "unsatisfiable":
        return web.Response(status=416, headers={"Content-Range": f"bytes */{total}"})
    start, end = wanted or (0, total - 1)
    response = web.StreamResponse(status=206 if wanted else 200, headers={"Content-Type": "video/mp4"})
    if wanted:
        response.headers["Content-Range"] = f"bytes {start}-{end}/{total}"
    response.content_length = end - start + 1
    await response.prepare(request)
    position = 0
    async for piece in _body_pieces(padded):
        # Only the part of each piece inside the range goes out; nothing after it is read.
        if position + len(piece) > start:
            await response.write(piece[max(0, start - position) : end + 1 - position])
        position += len(piece)
        if position > end:
            break
    await response.write_eof()
    return response


async def _body_pieces(padded: PaddedVideo) -> AsyncIterator[bytes | memoryview]:
    """The padded body in order: the file, the free box's header, its zeros."""
    file = await asyncio.to_thread(padded.path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(file.read, CHUNK_BYTES):
            yield chunk
    finally:
        file.close()
    if padded.free_box_header:
        yield padded.free_box_header
    remaining = padded.zero_bytes
    while remaining > 0:
        step = min(remaining, len(_ZEROS))
        yield _ZEROS[:step]
        remaining -= step


def _byte_range(header: str | None, total: int) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """(start, end) of a single `bytes=START-[END]` range, clipped to the body; None for no range
    (or one of another form, served whole as a server may); "unsatisfiable" past the end."""
    found = re.fullmatch(r"bytes=(\d+)-(\d*)", (header or "").strip())
    if found is None:
        return None
    start = int(found[1])
    end = min(int(found[2]), total - 1) if found[2] else total - 1
    if start >= total or end < start:
        return "unsatisfiable"
    return start, end


def _poll_interval_ms(job: Job) -> int:
    return max(100, min(1000, int(job.job_seconds * 100)))


def _list_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIST_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise invalid_value("limit", f"Invalid 'limit': expected an integer from 1 to {MAX_LIST_LIMIT}.")
    return limit


def _list_order(raw: str | None) -> Literal["asc", "desc"]:
    if raw is None or raw == "" or raw == "desc":
        return "desc"
    if raw == "asc":
        return "asc"
    raise invalid_value("order", f"Invalid value: '{raw}'. Supported values are: 'asc' and 'desc'.")
