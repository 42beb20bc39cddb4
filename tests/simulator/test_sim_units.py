"""The simulator's pure parts, checked without a server: config, lifecycle, quota, faults, media."""

from __future__ import annotations

import struct
from collections import Counter
from pathlib import Path

import pytest

from sorasim import SimulatorConfig
from sorasim.faults import FaultInjector, FaultKind
from sorasim.images import ImageError, image_info
from sorasim.lifecycle import phase_at
from sorasim.media import pad_video
from sorasim.quota import RollingWindowQuota
from tests.simulator.support import ffmpeg_image, png_bytes


def test_config_from_env_reads_every_knob() -> None:
    config = SimulatorConfig.from_env(
        {
            "SORA_SIM_JOB_SECONDS": "2.5",
            "SORA_SIM_FAULT_RATE": "0.1",
            "SORA_SIM_CREATES_PER_MINUTE": "2",
            "SORA_SIM_VIDEO_BYTES": "1048576",
            "SORA_SIM_IDENTITY_HEADER": "secret",
            "SORA_SIM_TOKEN_TTL_SECONDS": "60",
            "SORA_SIM_API_KEY": "key",
            "SORA_SIM_SEED": "42",
            "UNRELATED": "ignored",
        }
    )

    assert config == SimulatorConfig(
        job_seconds=2.5,
        fault_rate=0.1,
        creates_per_minute=2,
        video_bytes=1048576,
        identity_header="secret",
        token_ttl_seconds=60.0,
        api_key="key",
        seed=42,
    )


def test_config_defaults_and_empty_values() -> None:
    assert SimulatorConfig.from_env({"SORA_SIM_API_KEY": "", "SORA_SIM_SEED": " "}) == SimulatorConfig()
    assert SimulatorConfig() == SimulatorConfig(
        job_seconds=6.0, fault_rate=0.0, creates_per_minute=0, video_bytes=0, token_ttl_seconds=3600.0
    )


@pytest.mark.parametrize(
    "environ",
    [{"SORA_SIM_FAULT_RATE": "1.5"}, {"SORA_SIM_CREATES_PER_MINUTE": "two"}, {"SORA_SIM_JOB_SECONDS": "-1"}],
)
def test_config_refuses_bad_values(environ: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"SORA_SIM_|must be"):
        SimulatorConfig.from_env(environ)


def test_lifecycle_queues_then_renders_then_completes() -> None:
    job_seconds = 10.0
    samples = [phase_at(tenth / 10, job_seconds, fails=False) for tenth in range(0, 111)]

    assert {phase.status for phase in samples[:15]} == {"queued"}
    assert {phase.status for phase in samples[15:100]} == {"in_progress"}
    assert {(phase.status, phase.progress) for phase in samples[100:]} == {("completed", 100)}
    progress = [phase.progress for phase in samples]
    assert progress == sorted(progress)
    assert max(progress[:100]) == 99
    # Not a straight line: faster than linear in the first half of rendering.
    midway = phase_at(0.15 * job_seconds + 0.5 * 0.85 * job_seconds, job_seconds, fails=False).progress
    assert midway > 55
    assert samples[100].finished_after == job_seconds


def test_lifecycle_of_a_failing_job_stops_part_way() -> None:
    before, after = phase_at(5.9, 10.0, fails=True), phase_at(6.0, 10.0, fails=True)

    assert before.status == "in_progress"
    assert (after.status, after.finished_after) == ("failed", 6.0)
    assert 0 < after.progress < 100
    assert phase_at(100.0, 10.0, fails=True) == after


def test_rolling_quota_frees_slots_exactly_sixty_seconds_later() -> None:
    quota = RollingWindowQuota()

    assert quota.try_acquire(2, now=0.0) is None
    assert quota.try_acquire(2, now=10.0) is None
    assert quota.try_acquire(2, now=30.0) == 30
    assert quota.try_acquire(2, now=59.5) == 1  # half a second rounds up, never to 0
    assert quota.try_acquire(2, now=60.0) is None  # the first slot has just freed
    assert quota.try_acquire(2, now=60.0) == 10
    assert quota.try_acquire(0, now=60.0) is None  # 0 = unlimited
    assert quota.try_acquire(1, now=61.0) == 59  # a lowered limit waits for the newest slot


def test_seeded_faults_are_reproducible_and_cover_every_kind() -> None:
    injector_a, injector_b = FaultInjector(seed=3), FaultInjector(seed=3)
    sequence_a = [injector_a.draw(0.5) for _ in range(200)]
    sequence_b = [injector_b.draw(0.5) for _ in range(200)]

    assert sequence_a == sequence_b
    assert FaultInjector(seed=3).draw(1.0) is not None
    kinds = Counter(fault.kind for fault in sequence_a if fault is not None)
    assert set(kinds) == set(FaultKind)
    assert 70 <= sum(kinds.values()) <= 130
    assert all(
        (fault.retry_after in (1, 2)) == (fault.kind is FaultKind.TOO_MANY_REQUESTS)
        for fault in sequence_a
        if fault is not None
    )
    assert FaultInjector().draw(0.0) is None


def test_padding_plan_uses_a_free_box_of_the_exact_remaining_size(tmp_path: Path) -> None:
    mp4 = tmp_path / "tiny.mp4"
    mp4.write_bytes(b"\x00" * 100)

    small = pad_video(mp4, 1000)
    huge = pad_video(mp4, 2**32 + 1000)  # beyond 4 GiB the box needs the 64-bit size field
    too_close = pad_video(mp4, 105)

    assert small.free_box_header == struct.pack(">I4s", 900, b"free")
    assert (small.zero_bytes, small.total_bytes) == (892, 1000)
    assert huge.free_box_header == struct.pack(">I4sQ", 1, b"free", 2**32 + 900)
    assert huge.total_bytes == 2**32 + 1000
    assert (too_close.free_box_header, too_close.total_bytes) == (b"", 100)
    assert pad_video(mp4, 0).total_bytes == 100


@pytest.mark.parametrize(
    ("suffix", "codec", "expected_format", "signature"),
    [
        (".jpg", (), "jpeg", b"\xff\xd8"),
        (".png", (), "png", b"\x89PNG"),
        (".webp", ("-c:v", "libwebp"), "webp", b"VP8 "),
        (".webp", ("-c:v", "libwebp", "-lossless", "1"), "webp", b"VP8L"),
        (".webp", ("-c:v", "libwebp"), "webp", b"VP8X"),
    ],
    ids=["jpeg", "png", "webp-lossy", "webp-lossless", "webp-extended"],
)
def test_image_dimensions_from_headers(
    tmp_path: Path, suffix: str, codec: tuple[str, ...], expected_format: str, signature: bytes
) -> None:
    # An alpha channel makes libwebp write the extended (VP8X) layout.
    data = ffmpeg_image(tmp_path, 1792, 1024, suffix, *codec, translucent=signature == b"VP8X")
    # Each variant exercises a different header layout.
    assert signature in data[:16]

    info = image_info(data)

    assert (info.format, info.width, info.height, info.size) == (expected_format, 1792, 1024, "1792x1024")


def test_image_dimensions_of_hand_made_png_and_garbage() -> None:
    assert image_info(png_bytes(3, 5)).size == "3x5"
    with pytest.raises(ImageError):
        image_info(b"GIF89a....")
    with pytest.raises(ImageError):
        image_info(b"\xff\xd8\xff\xd9")
