"""The simulator's knobs: read once from `SORA_SIM_*` variables, some changeable at runtime."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ENV_PREFIX = "SORA_SIM_"

# Only these may be changed while the simulator runs (PATCH /_sim/config); secrets and the
# seed are fixed at start so a test cannot accidentally lock every client out.
RUNTIME_KNOBS: dict[str, type] = {
    "job_seconds": float,
    "fault_rate": float,
    "creates_per_minute": int,
    "video_bytes": int,
    "token_ttl_seconds": float,
    "fault_kinds": str,
    "down": str,
}
ALL_FAULT_KINDS = ("429", "500", "503", "dropped")
# The protocols `down` can take offline (sorasim.outage maps each to its API paths);
# azure-openai and openai are one protocol, the /openai/ paths, under either name.
DOWNABLE_PROTOCOLS = ("azure-openai", "openai", "aimlapi", "geminigen", "gemini", "fal")
# Never shown by /_sim/config: the identity secret and every provider's key.
SECRET_FIELDS = ("identity_header", "api_key", "aimlapi_key", "geminigen_key", "gemini_key", "fal_key")


@dataclass(frozen=True)
class SimulatorConfig:
    job_seconds: float = 6.0
    """Real time from creation to `completed`."""
    fault_rate: float = 0.0
    """Share of `/openai/v1/*` requests answered with a transient fault."""
    creates_per_minute: int = 0
    """Successful creations (create + remix) allowed in any rolling 60 s; 0 = unlimited."""
    video_bytes: int = 0
    """Pad downloaded MP4s to exactly this many bytes; 0 = no padding."""
    identity_header: str | None = None
    """Secret expected in `X-IDENTITY-HEADER` by the token endpoint; random when None."""
    token_ttl_seconds: float = 3600.0
    api_key: str | None = None
    """When set, an `api-key` header with this value is accepted as well as bearer tokens."""
    seed: int | None = None
    """Seed for fault injection, for reproducible fault sequences."""
    fault_kinds: str = ",".join(ALL_FAULT_KINDS)
    """Which faults to inject (comma-separated): an outage is 500/503/dropped without 429s."""
    aimlapi_key: str = "sim-aimlapi-key"
    """Bearer key the AI/ML API protocol (`/v2/video/generations`, sorasim.aimlapi) accepts."""
    geminigen_key: str = "sim-geminigen-key"
    """The `x-api-key` the GeminiGen protocol (`/uapi/v1/*`, sorasim.geminigen) accepts."""
    gemini_key: str = "sim-gemini-key"
    """The `x-goog-api-key` the Gemini API protocol (`/v1beta/*`, sorasim.gemini) accepts."""
    fal_key: str = "sim-fal-key"
    """The `Authorization: Key` the fal queue protocol (`/fal-ai/*`, sorasim.fal) accepts."""
    down: str = ""
    """Protocols whose API answers every request with a 503 (comma-separated, see
    DOWNABLE_PROTOCOLS; sorasim.outage): a provider that is down. Their CDN paths keep working."""

    @property
    def down_list(self) -> frozenset[str]:
        return frozenset(name.strip() for name in self.down.split(",") if name.strip())

    @property
    def fault_kind_list(self) -> tuple[str, ...]:
        return tuple(kind.strip() for kind in self.fault_kinds.split(",") if kind.strip())

    def __post_init__(self) -> None:
        _require(math.isfinite(self.job_seconds) and self.job_seconds >= 0, "job_seconds must be >= 0")
        _require(0.0 <= self.fault_rate <= 1.0, "fault_rate must be between 0 and 1")
        _require(self.creates_per_minute >= 0, "creates_per_minute must be >= 0")
        _require(self.video_bytes >= 0, "video_bytes must be >= 0")
        _require(
            math.isfinite(self.token_ttl_seconds) and self.token_ttl_seconds > 0,
            "token_ttl_seconds must be > 0",
        )
        _require(self.identity_header != "", "identity_header must not be empty")
        _require(self.api_key != "", "api_key must not be empty")
        kinds = self.fault_kind_list
        _require(
            bool(kinds) and set(kinds) <= set(ALL_FAULT_KINDS),
            f"fault_kinds must list some of {ALL_FAULT_KINDS}",
        )
        unknown = sorted(self.down_list - set(DOWNABLE_PROTOCOLS))
        _require(
            not unknown, f"down names unknown protocols {unknown}; the protocols are {DOWNABLE_PROTOCOLS}"
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SimulatorConfig:
        """Build a config from `SORA_SIM_*` variables; unset or empty ones keep their defaults."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + field.name.upper(), "").strip()
            if not raw:
                continue
            kind = _field_kind(field.name)
            try:
                values[field.name] = kind(raw)
            except ValueError:
                name = ENV_PREFIX + field.name.upper()
                raise ValueError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
        return cls(**values)

    def with_runtime_changes(self, changes: Mapping[str, object]) -> SimulatorConfig:
        """Return a copy with `changes` applied; raise ValueError naming any bad knob or value."""
        unknown = sorted(set(changes) - set(RUNTIME_KNOBS))
        if unknown:
            raise ValueError(f"not changeable at runtime: {', '.join(unknown)}")
        converted: dict[str, Any] = {}
        for name, value in changes.items():
            kind = RUNTIME_KNOBS[name]
            if kind is str:
                if not isinstance(value, str):
                    raise ValueError(f"{name} must be a string")
                converted[name] = value
                continue
            # bool is an int subclass; `true` for a number is a caller mistake, not 1.
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if not numeric or (kind is int and not float(value).is_integer()):  # type: ignore[arg-type]
                raise ValueError(f"{name} must be a {kind.__name__}")
            converted[name] = kind(value)
        return dataclasses.replace(self, **converted)

    def public_view(self) -> dict[str, Any]:
        """The knobs without secrets, for GET/PATCH /_sim/config answers."""
        view = dataclasses.asdict(self)
        for secret in SECRET_FIELDS:
            view[secret] = None if view[secret] is None else "***"
        return view


def _field_kind(name: str) -> type:
    if name in RUNTIME_KNOBS:
        return RUNTIME_KNOBS[name]
    if name == "seed":
        return int
    return str


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)
