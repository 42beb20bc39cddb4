"""The model catalog: which public model ids the gateway offers, and for each, which provider
account makes it, under what name, in which sizes and durations, with which extras and prices.

Read from MODEL_CATALOG (a JSON list) or MODEL_CATALOG_FILE (the path of one). Without either,
a deployment that sets the older per-model settings (MODEL_OPTIONS, PRICING, SORA_DEPLOYMENTS,
ALLOWED_*) keeps the models they describe on its Azure OpenAI account; one that sets none gets the
built-in models below of the accounts it has.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gateway.errors import SettingsError
from gateway.video_options import DeclaredOptions, parse_declared

# Public ids travel as a path segment (GET /v1/models/{id}).
MODEL_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
SIZE = re.compile(r"[1-9][0-9]{0,4}x[1-9][0-9]{0,4}")
SECONDS = re.compile(r"[1-9][0-9]{0,3}")
# A route says where the model is made; what it leaves out it inherits from the model.
_ROUTE_FIELDS = frozenset(
    {
        "provider",
        "provider_model",
        "sizes",
        "seconds",
        "image_input",
        "remix",
        "price_per_second",
        "max_wait_seconds",
        "options",
    }
)
# A model entry is a route's fields (its implicit route) plus its id and, optionally, its routes.
_FIELDS = _ROUTE_FIELDS | {"id", "routes"}
_NO_OPTIONS: Mapping[str, object] = MappingProxyType({})
# The usual names of shapes; anything else is named by its reduced ratio.
_RATIOS = {(16, 9): "16:9", (9, 16): "9:16", (1, 1): "1:1", (4, 3): "4:3", (3, 4): "3:4"}
# Sora's "large" sizes (1792x1024) are its 1080p-class shapes.
_RESOLUTIONS = {480: "480p", 720: "720p", 1024: "1080p", 1080: "1080p", 2160: "4k"}


# The built-in catalog: live models by provider kind, in MODEL_CATALOG's own form (and checked by
# the same parser). Sora 2 is not here: Azure OpenAI and OpenAI retired it in September 2026, and
# neither offers another video model through the Videos API, so the azure-openai and
# openai-compatible kinds have none; their deployments are listed in MODEL_CATALOG.
# Live means: documented by the provider in its latest material (the AI/ML API's model schemas of
# 2026-08; GeminiGen's Veo vocabulary as its clients state it in 2026-07) and not announced as
# retired. No prices: the aggregators' per-second prices are not published in a form checked here,
# so an operator who wants `estimated_cost` states them in MODEL_CATALOG.
_VEO_SIZES = ["1280x720", "720x1280", "1920x1080", "1080x1920"]
_VEO_720P = ["1280x720", "720x1280"]
_VEO_SECONDS = [4, 6, 8]
# What the aggregators' Veo 3.1 inputs take of the per-request options (gateway.video_options).
_VEO_OPTIONS = ["negative_prompt", "generate_audio"]
BUILT_IN_MODELS: Mapping[str, tuple[Mapping[str, Any], ...]] = {
    "aimlapi": tuple(
        # Its text-to-video ids take no image (the -i2v ids require one, which `image_input` cannot say).
        {
            "id": public,
            "provider_model": native,
            "sizes": _VEO_SIZES,
            "seconds": _VEO_SECONDS,
            "options": _VEO_OPTIONS,
        }
        for public, native in (("veo-3.1", "google/veo-3.1-t2v"), ("veo-3.1-fast", "google/veo-3.1-t2v-fast"))
    ),
    "geminigen": tuple(
        # Its Veo path takes first-frame images (`ref_images`, mode `frame`).
        {"id": name, "sizes": _VEO_SIZES, "seconds": _VEO_SECONDS, "image_input": True}
        for name in ("veo-3.1", "veo-3.1-fast")
    ),
    "gemini": tuple(
        # Google's own Veo 3.0 ids (the 3.1 previews were retired on the Gemini API). 720p only:
        # 1080p needs 8 seconds there, and the catalog cannot tie a size to a duration.
        {
            "id": public,
            "provider_model": native,
            "sizes": _VEO_720P,
            "seconds": _VEO_SECONDS,
            "image_input": True,
            # Veo 3.x always makes sound there; dont_allow is Veo 2's.
            "options": {"negative_prompt": True, "person_generation": ["allow_all", "allow_adult"]},
        }
        for public, native in (
            ("veo-3.0", "veo-3.0-generate-001"),
            ("veo-3.0-fast", "veo-3.0-fast-generate-001"),
        )
    ),
    "fal": tuple(
        # Text-to-video ids: fal's image-to-video ids require an image, which `image_input` cannot say.
        {
            "id": public,
            "provider_model": native,
            "sizes": _VEO_SIZES,
            "seconds": _VEO_SECONDS,
            "options": _VEO_OPTIONS,
        }
        for public, native in (("veo-3.1", "fal-ai/veo3.1"), ("veo-3.1-fast", "fal-ai/veo3.1/fast"))
    ),
}


@dataclass(frozen=True)
class Route:
    """One provider account that makes a model: under which name, which of the model's sizes and
    durations, with which extras, at which prices. A model's routes are tried in order."""

    provider: str
    provider_model: str
    sizes: tuple[str, ...]
    seconds: tuple[str, ...]
    image_input: bool
    remix: bool
    prices: Mapping[str, float]
    # How long a job may wait out this route's throttling (429s) before it moves to the next
    # route; None: as long as the job's deadline allows.
    max_wait_seconds: float | None = None
    # The per-request options it carries (gateway.video_options), with a choice's allowed values.
    options: DeclaredOptions = field(default_factory=dict)

    def fits(
        self, size: str, seconds: str, *, image: bool, options: Mapping[str, object] = _NO_OPTIONS
    ) -> bool:
        """Can this route make that video? (A remix stays with its source's route.)"""
        return (
            size in self.sizes
            and seconds in self.seconds
            and (self.image_input or not image)
            and all(self._carries(name, value) for name, value in options.items())
        )

    def _carries(self, name: str, value: object) -> bool:
        allowed = self.options.get(name)
        return allowed is not None and (not allowed or value in allowed)


@dataclass(frozen=True)
class CatalogModel:
    id: str  # the public model id apps send
    provider: str  # the provider account (a PROVIDERS name)
    provider_model: str  # the provider's own model name or deployment
    sizes: tuple[str, ...]
    seconds: tuple[str, ...]
    image_input: bool
    remix: bool
    prices: Mapping[str, float]  # USD per second by size; a size without a price has no estimate
    # Where the model is made, in the order tried; empty: only `provider` (the model's own fields).
    routes: tuple[Route, ...] = ()
    # The per-request options it takes: those of any of its routes (each route narrows them).
    options: DeclaredOptions = field(default_factory=dict)

    @property
    def all_routes(self) -> tuple[Route, ...]:
        if self.routes:
            return self.routes
        return (
            Route(
                self.provider,
                self.provider_model,
                self.sizes,
                self.seconds,
                self.image_input,
                self.remix,
                self.prices,
                options=self.options,
            ),
        )

    def routes_for(
        self, size: str, seconds: str, *, image: bool, options: Mapping[str, object] = _NO_OPTIONS
    ) -> tuple[Route, ...]:
        """The routes that can make this video, in the order they are tried."""
        return tuple(
            route for route in self.all_routes if route.fits(size, seconds, image=image, options=options)
        )

    def route(self, provider: str | None, provider_model: str | None) -> Route | None:
        """The route a job was sent by (None when the catalog no longer has it)."""
        for route in self.all_routes:
            if route.provider == provider and route.provider_model == provider_model:
                return route
        return None

    def price_per_second(self) -> float | dict[str, float] | None:
        """As the catalog states it: one number when every size costs the same."""
        values = set(self.prices.values())
        if len(values) == 1 and set(self.prices) == set(self.sizes):
            return values.pop()
        return dict(self.prices) or None


def shape_of(size: str) -> tuple[str, str]:
    """A size's aspect ratio and resolution: 1280x720 is ("16:9", "720p"), 1080x1920 ("9:16", "1080p")."""
    width, height = (int(part) for part in size.split("x"))
    short = min(width, height)
    resolution = _RESOLUTIONS.get(short, f"{short}p")
    ratio = width / height
    # The nearest usual name within 5%: Sora's 1792x1024 (7:4) is its 16:9.
    (w, h), name = min(_RATIOS.items(), key=lambda item: abs(ratio - item[0][0] / item[0][1]))
    if abs(ratio - w / h) <= 0.05 * (w / h):
        return name, resolution
    divisor = math.gcd(width, height)
    return f"{width // divisor}:{height // divisor}", resolution


def parse_catalog(key: str, value: Any, accounts: Iterable[str]) -> dict[str, CatalogModel]:
    """MODEL_CATALOG's JSON (already decoded): a non-empty list of model entries."""
    known = tuple(accounts)
    if not isinstance(value, list) or not value:
        raise SettingsError(f"setting {key} must be a non-empty JSON list of models")
    catalog: dict[str, CatalogModel] = {}
    for entry in value:
        model = _entry(key, entry, known)
        if model.id in catalog:
            raise SettingsError(f"setting {key} lists model {model.id!r} twice")
        catalog[model.id] = model
    return catalog


def built_in_catalog(accounts: Mapping[str, str]) -> dict[str, CatalogModel]:
    """The built-in models of the given accounts (name -> kind), in their order. When two accounts
    offer the same public id, the first one listed makes it under that id and a later one under
    `<id>-<account>` (`veo-3.1-geminigen`), so every account with a key serves something."""
    catalog: dict[str, CatalogModel] = {}
    for name, kind in accounts.items():
        for entry in BUILT_IN_MODELS.get(kind, ()):
            model_id = str(entry["id"])
            if model_id in catalog:
                model_id = f"{model_id}-{name}"
                if model_id in catalog or not MODEL_ID.fullmatch(model_id):
                    continue
            provider_model = entry.get("provider_model", entry["id"])
            described = {**entry, "id": model_id, "provider_model": provider_model, "provider": name}
            catalog[model_id] = _entry("MODEL_CATALOG", described, tuple(accounts))
    return catalog


def _entry(key: str, entry: Any, accounts: tuple[str, ...]) -> CatalogModel:
    if not isinstance(entry, dict):
        raise SettingsError(f"setting {key} must list objects, got {type(entry).__name__}")
    model_id = entry.get("id")
    if not isinstance(model_id, str) or not MODEL_ID.fullmatch(model_id.strip()):
        raise SettingsError(f"setting {key} has a model without an id of letters, digits, '.', '_' or '-'")
    where = f"setting {key}: model {model_id!r}"
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise SettingsError(f"{where} has unknown fields {unknown}; expected {sorted(_FIELDS)}")
    sizes = listed(where + " sizes", entry.get("sizes"), SIZE, "sizes like 1280x720")
    seconds = listed(where + " seconds", entry.get("seconds"), SECONDS, "whole seconds")
    image_input, remix = (_flag(where, name, entry.get(name, False)) for name in ("image_input", "remix"))
    if "routes" in entry:
        routes = _routes(where, entry, accounts, model_id.strip())
    else:
        # One route, implicit: the model's own provider, provider model and prices.
        routes = (
            _route(where, {**entry, "provider_model": entry.get("provider_model", model_id)}, accounts),
        )
    first = routes[0]
    return CatalogModel(
        id=model_id.strip(),
        provider=first.provider,
        provider_model=first.provider_model,
        sizes=sizes,
        seconds=seconds,
        image_input=image_input,
        remix=remix,
        prices=first.prices,
        routes=routes if "routes" in entry else (),
        options=parse_declared(where, entry.get("options")),
    )


def _routes(where: str, entry: dict[str, Any], accounts: tuple[str, ...], model_id: str) -> tuple[Route, ...]:
    """A model's `routes`: each inherits what it leaves out from the model and may narrow it; the
    model promises nothing that no route can make."""
    listed_routes = entry["routes"]
    shared = sorted(set(entry) & {"provider", "provider_model", "price_per_second"})
    if shared:
        raise SettingsError(f"{where} has routes, so {shared} belong in each route")
    if not isinstance(listed_routes, list) or not listed_routes:
        raise SettingsError(f"{where}: routes must be a non-empty list of {{provider, provider_model, ...}}")
    inherited: dict[str, Any] = {
        name: entry[name]
        for name in ("sizes", "seconds", "image_input", "remix", "max_wait_seconds", "options")
        if name in entry
    }
    model_options = parse_declared(where, entry.get("options"))
    routes: list[Route] = []
    for number, route_entry in enumerate(listed_routes, start=1):
        here = f"{where} route {number}"
        if not isinstance(route_entry, dict):
            raise SettingsError(f"{here} must be an object")
        unknown = sorted(set(route_entry) - _ROUTE_FIELDS)
        if unknown:
            raise SettingsError(f"{here} has unknown fields {unknown}; expected {sorted(_ROUTE_FIELDS)}")
        route = _route(here, {"provider_model": model_id, **inherited, **route_entry}, accounts)
        for what, values, allowed in (
            ("sizes", route.sizes, entry.get("sizes")),
            ("seconds", route.seconds, entry.get("seconds")),
        ):
            extra = set(values) - {str(item).strip() for item in allowed or ()}
            if extra:
                raise SettingsError(f"{here} {what} {sorted(extra)} are not the model's own")
        for name, allowed in route.options.items():
            if name not in model_options or not set(allowed) <= set(model_options[name]):
                raise SettingsError(f"{here} option {name} {list(allowed)} is not the model's own")
        if (route.provider, route.provider_model) in {(r.provider, r.provider_model) for r in routes}:
            raise SettingsError(f"{here} repeats {route.provider} {route.provider_model!r}")
        routes.append(route)
    for what, promised, made in (
        ("sizes", entry.get("sizes"), {size for route in routes for size in route.sizes}),
        ("seconds", entry.get("seconds"), {second for route in routes for second in route.seconds}),
    ):
        missing = {str(item).strip() for item in promised or ()} - made
        if missing:
            raise SettingsError(f"{where} offers {what} {sorted(missing)} that no route makes")
    for flag in ("image_input", "remix"):
        if inherited.get(flag) and not any(getattr(route, flag) for route in routes):
            raise SettingsError(f"{where} offers {flag} but no route has it")
    for name, allowed in model_options.items():
        carried = {value for route in routes for value in route.options.get(name, ())}
        if not any(name in route.options for route in routes) or not carried.issuperset(allowed):
            raise SettingsError(f"{where} offers option {name} {list(allowed)} that no route carries")
    return tuple(routes)


def _route(where: str, entry: dict[str, Any], accounts: tuple[str, ...]) -> Route:
    provider = entry.get("provider")
    if provider not in accounts:
        raise SettingsError(f"{where} names provider {provider!r}; PROVIDERS has {', '.join(accounts)}")
    provider_model = entry.get("provider_model")
    if not isinstance(provider_model, str) or not provider_model.strip():
        raise SettingsError(f"{where}: provider_model must be a non-empty string")
    sizes = listed(where + " sizes", entry.get("sizes"), SIZE, "sizes like 1280x720")
    return Route(
        provider=str(provider),
        provider_model=provider_model.strip(),
        sizes=sizes,
        seconds=listed(where + " seconds", entry.get("seconds"), SECONDS, "whole seconds"),
        image_input=_flag(where, "image_input", entry.get("image_input", False)),
        remix=_flag(where, "remix", entry.get("remix", False)),
        prices=_prices(where, entry.get("price_per_second"), sizes),
        max_wait_seconds=_max_wait(where, entry.get("max_wait_seconds")),
        options=parse_declared(where, entry.get("options")),
    )


def _max_wait(where: str, value: Any) -> float | None:
    return None if value is None else amount(where, "max_wait_seconds", value)


def _flag(where: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(f"{where}: {name} must be true or false")
    return value


def _prices(where: str, value: Any, sizes: tuple[str, ...]) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        return dict.fromkeys(sizes, amount(where, "price_per_second", value))
    prices: dict[str, float] = {}
    for size, price in value.items():
        if size not in sizes:
            raise SettingsError(f"{where} prices {size!r}, a size it does not make ({', '.join(sizes)})")
        prices[size] = amount(where, f"the price at {size}", price)
    return prices


def listed(what: str, value: Any, pattern: re.Pattern[str], form: str) -> tuple[str, ...]:
    """A non-empty JSON list of strings (or whole numbers) that each match `pattern`."""
    if not isinstance(value, list) or not value:
        raise SettingsError(f"{what} must be a non-empty list of {form}")
    items: list[str] = []
    for item in value:
        text = str(item) if isinstance(item, int) and not isinstance(item, bool) else item
        if not isinstance(text, str) or not pattern.fullmatch(text.strip()):
            raise SettingsError(f"{what} lists {item!r}; expected {form}")
        items.append(text.strip())
    return tuple(dict.fromkeys(items))


def amount(where: str, what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise SettingsError(f"{where}: {what} must be a number of at least 0, got {value!r}")
    return float(value)
