"""Downloads: a real MP4 of the requested size and duration, JPEG images, exact padding."""

from __future__ import annotations

import resource
import time

import openai
import pytest
import requests
from openai import OpenAI

from sorasim import SimulatorConfig, SoraSimulator
from sorasim.images import image_info
from tests.mp4 import boxes, duration_seconds
from tests.simulator.support import assert_openai_error, finished_video

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")


def track_dimensions(mp4: bytes) -> tuple[int, int]:
    """Width and height from the video track's tkhd (16.16 fixed point at the end of the box)."""
    moov = next(box for box in boxes(mp4) if box[0] == "moov")
    for kind, payload, end in boxes(mp4, moov[1], moov[2]):
        if kind != "trak":
            continue
        tkhd = next(box for box in boxes(mp4, payload, end) if box[0] == "tkhd")
        width = int.from_bytes(mp4[tkhd[2] - 8 : tkhd[2] - 4], "big") >> 16
        height = int.from_bytes(mp4[tkhd[2] - 4 : tkhd[2]], "big") >> 16
        if width and height:
            return width, height
    raise AssertionError("no video track")


@pytest.mark.parametrize(
    ("model", "seconds", "size"),
    [("sora-2", "4", "720x1280"), ("sora-2", "8", "1280x720"), ("sora-2-pro", "12", "1792x1024")],
)
def test_video_is_a_playable_mp4_of_the_requested_size_and_duration(
    sim: SoraSimulator, client: OpenAI, http: requests.Session, model: str, seconds: str, size: str
) -> None:
    video = finished_video(http, sim, model=model, seconds=seconds, size=size)

    download = client.videos.download_content(video.id)
    mp4 = download.read()

    assert download.response.headers["Content-Type"] == "video/mp4"
    assert int(download.response.headers["Content-Length"]) == len(mp4)
    kinds = [kind for kind, _, _ in boxes(mp4)]
    assert kinds[0] == "ftyp"
    assert "moov" in kinds
    assert "mdat" in kinds
    assert duration_seconds(mp4) == pytest.approx(int(seconds), abs=0.05)
    assert b"avc1" in mp4[: 64 * 1024]  # H.264 sample description, in the moov up front
    assert f"{track_dimensions(mp4)[0]}x{track_dimensions(mp4)[1]}" == size
    assert sim.stats()["downloads"] == 1


@pytest.mark.parametrize("variant", ["thumbnail", "spritesheet"])
def test_image_variants_are_jpegs(
    sim: SoraSimulator, client: OpenAI, http: requests.Session, variant: str
) -> None:
    video = finished_video(http, sim, size="1280x720")

    download = client.videos.download_content(video.id, variant=variant)  # type: ignore[arg-type]
    jpeg = download.read()

    assert download.response.headers["Content-Type"] == "image/jpeg"
    assert jpeg[:3] == b"\xff\xd8\xff"
    assert jpeg[-2:] == b"\xff\xd9"
    info = image_info(jpeg)
    if variant == "thumbnail":
        assert info.size == "1280x720"
    else:
        assert (info.width, info.height) == (4 * 320, 180)  # four quarter-size frames in a row


def test_content_is_not_available_before_completion(
    sim: SoraSimulator, client: OpenAI, http: requests.Session
) -> None:
    running = client.videos.create(prompt="still rendering")

    with pytest.raises(openai.NotFoundError) as raised:
        client.videos.download_content(running.id)

    assert raised.value.code == "video_not_ready"
    assert_openai_error(
        http.get(f"{sim.url}/openai/v1/videos/video_unknown/content", timeout=10),
        404,
        "video_not_found",
        "video_id",
    )
    assert_openai_error(
        http.get(f"{sim.url}/openai/v1/videos/{running.id}/content", params={"variant": "gif"}, timeout=10),
        400,
        "invalid_value",
        "variant",
    )
    assert sim.stats()["downloads"] == 0


@pytest.mark.parametrize("target", [3_000_000, 5_000_001])
def test_padded_video_has_exactly_the_configured_size(
    sim: SoraSimulator, http: requests.Session, target: int
) -> None:
    video = finished_video(http, sim)
    plain = http.get(f"{sim.url}/openai/v1/videos/{video.id}/content", timeout=30).content
    assert len(plain) < target
    sim.update_config(video_bytes=target)

    response = http.get(f"{sim.url}/openai/v1/videos/{video.id}/content", timeout=30)
    padded = response.content

    assert len(padded) == target == int(response.headers["Content-Length"])
    assert padded[: len(plain)] == plain
    last_kind, last_payload, last_end = boxes(padded)[-1]
    assert (last_kind, last_payload, last_end) == ("free", len(plain) + 8, target)
    assert padded[last_payload:] == bytes(target - last_payload)
    assert duration_seconds(padded) == pytest.approx(4, abs=0.05)


def test_target_smaller_than_the_video_leaves_it_unpadded(sim: SoraSimulator, http: requests.Session) -> None:
    video = finished_video(http, sim)
    plain = http.get(f"{sim.url}/openai/v1/videos/{video.id}/content", timeout=30).content
    sim.update_config(video_bytes=1000)

    assert http.get(f"{sim.url}/openai/v1/videos/{video.id}/content", timeout=30).content == plain


def test_one_gibibyte_download_streams_in_bounded_memory(sim: SoraSimulator, http: requests.Session) -> None:
    video = finished_video(http, sim)
    sim.update_config(video_bytes=2**30)
    peak_before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    received = 0
    with http.get(f"{sim.url}/openai/v1/videos/{video.id}/content", stream=True, timeout=60) as response:
        assert int(response.headers["Content-Length"]) == 2**30
        for chunk in response.iter_content(chunk_size=1024 * 1024):
            received += len(chunk)

    assert received == 2**30
    # Server and client share this process: neither may have held the body in memory.
    peak_growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before_kib) / 1024
    assert peak_growth_mib < 64


def test_stopping_during_a_download_cuts_it_off_promptly() -> None:
    simulator = SoraSimulator(SimulatorConfig(job_seconds=0, video_bytes=2**34, api_key="stop-test")).start()
    try:
        headers = {"api-key": "stop-test"}
        created = requests.post(
            f"{simulator.url}/openai/v1/videos", headers=headers, json={"prompt": "p"}, timeout=10
        )
        url = f"{simulator.url}/openai/v1/videos/{created.json()['id']}/content"
        with requests.get(url, headers=headers, stream=True, timeout=10) as response:
            chunks = response.iter_content(chunk_size=1024 * 1024)
            next(chunks)  # the 16 GiB body is flowing; the client now stops reading

            started = time.monotonic()
            simulator.stop()
            assert time.monotonic() - started < 3

            # The server end is gone (not merely idle): the body ends early instead of hanging.
            with pytest.raises(requests.exceptions.ChunkedEncodingError):
                for _ in chunks:
                    pass
    finally:
        simulator.stop()
