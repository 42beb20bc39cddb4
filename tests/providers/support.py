"""What the provider conformance tests share: reading the simulator's counts and an adapter's
finished asset, and unique prompt markers."""

from __future__ import annotations

import uuid
from typing import Any

from gateway.providers.port import VideoProvider
from sorasim import SoraSimulator
from tests.sim_records import sim_created


def _created(sim: SoraSimulator, needle: str) -> dict[str, Any]:
    return sim_created(sim.url, needle)


def jobs_created(sim: SoraSimulator, needle: str) -> int:
    """Upstream jobs the simulator made whose prompt contains `needle`, in any protocol."""
    return int(_created(sim, needle)["jobs_created"])


def options_created(sim: SoraSimulator, needle: str) -> list[dict[str, Any]]:
    """The provider-native option fields (e.g. gemini's `negativePrompt`, fal's
    `generate_audio`) each of those jobs' creates carried, in creation order."""
    return list(_created(sim, needle)["options"])


def download(provider: VideoProvider, video_id: str, variant: str = "video") -> bytes:
    """The finished asset, read through the adapter as the gateway reads it."""
    with provider.open_asset(video_id, variant) as chunks:
        return b"".join(chunks)


def marker() -> str:
    """A prompt marker no other test uses."""
    return f"[{uuid.uuid4().hex[:12]}]"
