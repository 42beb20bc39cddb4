"""A model's routes in the catalog, and which failures move a job to the next one (pure rules;
the stack-level fallback is tests/pipeline/test_fallback.py)."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from urllib3.exceptions import NewConnectionError

from gateway.catalog import CatalogModel, parse_catalog
from gateway.errors import (
    SettingsError,
    UpstreamAmbiguousError,
    UpstreamRejectedError,
    UpstreamThrottled,
    UpstreamTransientError,
)
from gateway.jobs import Job
from gateway.reroute import has_alternatives, next_route, untouched

ACCOUNTS = ("aimlapi", "fal", "gemini")
SIZES = ["1280x720", "720x1280", "1920x1080"]


def catalog(*entries: dict[str, Any]) -> dict[str, CatalogModel]:
    return parse_catalog("MODEL_CATALOG", list(entries), ACCOUNTS)


def routed(**changes: Any) -> dict[str, Any]:
    return {
        "id": "veo",
        "sizes": SIZES,
        "seconds": [4, 8],
        "image_input": True,
        "routes": [
            {
                "provider": "aimlapi",
                "provider_model": "google/veo-3.1-t2v",
                "image_input": False,
                "price_per_second": 0.5,
            },
            {"provider": "gemini", "provider_model": "veo-3.0", "sizes": SIZES[:2], "price_per_second": 0.4},
            {"provider": "fal", "provider_model": "fal-ai/veo3.1", "price_per_second": 0.25},
        ],
        **changes,
    }


def job(**changes: Any) -> Job:
    fields: dict[str, Any] = {
        "id": "video_1",
        "app_id": "app_1",
        "model": "veo",
        "prompt": "p",
        "seconds": "4",
        "size": "1920x1080",
        "created_at": 0,
        "provider": "aimlapi",
        "provider_model": "google/veo-3.1-t2v",
    }
    return Job(**{**fields, **changes})


def test_routes_inherit_from_the_model_and_the_first_is_what_the_model_shows() -> None:
    model = catalog(routed())["veo"]
    assert [route.provider for route in model.routes] == ["aimlapi", "gemini", "fal"]
    assert (model.provider, model.provider_model) == ("aimlapi", "google/veo-3.1-t2v")
    assert model.prices == dict.fromkeys(SIZES, 0.5)
    assert model.routes[1].sizes == tuple(SIZES[:2])
    assert model.routes[2].sizes == tuple(SIZES)  # inherited
    assert model.routes[1].image_input is True  # inherited from the model
    assert model.routes[0].image_input is False  # its own


def test_a_routes_max_wait_is_its_own_or_its_models() -> None:
    model = catalog(
        routed(
            max_wait_seconds=30,
            routes=[
                {"provider": "aimlapi", "provider_model": "a", "max_wait_seconds": 5},
                {"provider": "fal", "provider_model": "b"},
            ],
        )
    )["veo"]
    assert [route.max_wait_seconds for route in model.routes] == [5.0, 30.0]
    assert catalog(routed())["veo"].routes[0].max_wait_seconds is None
    with pytest.raises(SettingsError, match="max_wait_seconds"):
        catalog(routed(max_wait_seconds=-1))


def test_a_model_without_routes_has_one_implicit_route() -> None:
    model = catalog(
        {"id": "one", "provider": "fal", "sizes": SIZES, "seconds": [4], "price_per_second": 0.1}
    )["one"]
    assert model.routes == ()
    (only,) = model.all_routes
    assert (only.provider, only.provider_model, only.prices) == ("fal", "one", dict.fromkeys(SIZES, 0.1))


def test_routes_for_a_video_skip_those_that_cannot_make_it() -> None:
    model = catalog(routed())["veo"]
    assert [r.provider for r in model.routes_for("1920x1080", "4", image=False)] == ["aimlapi", "fal"]
    assert [r.provider for r in model.routes_for("1280x720", "8", image=True)] == ["gemini", "fal"]
    assert model.route("fal", "fal-ai/veo3.1") is model.routes[2]
    assert model.route("fal", "another") is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"provider": "fal"}, "belong in each route"),
        ({"routes": []}, "non-empty list"),
        ({"routes": [{"provider": "nowhere", "provider_model": "x"}]}, "names provider 'nowhere'"),
        (
            {"routes": [{"provider": "fal", "provider_model": "x", "sizes": ["640x480"]}]},
            "not the model's own",
        ),
        ({"routes": [{"provider": "fal", "provider_model": "x", "colour": "red"}]}, "unknown fields"),
        (
            {
                "routes": [
                    {"provider": "fal", "provider_model": "x"},
                    {"provider": "fal", "provider_model": "x"},
                ]
            },
            "repeats",
        ),
        ({"routes": [{"provider": "fal", "provider_model": "x", "sizes": SIZES[:1]}]}, "that no route makes"),
        ({"routes": [{"provider": "fal", "provider_model": "x", "image_input": False}]}, "no route has it"),
    ],
)
def test_bad_routes_stop_the_app_naming_the_setting(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match="MODEL_CATALOG") as raised:
        catalog(routed(**changes))
    assert message in str(raised.value)


def test_the_next_route_is_the_next_that_fits_and_is_not_cooling_down() -> None:
    models = catalog(routed())
    on_first = job()
    assert next_route(on_first, models).provider == "fal"  # type: ignore[union-attr]  # gemini has no 1080p
    small = job(size="1280x720")
    assert next_route(small, models).provider == "gemini"  # type: ignore[union-attr]
    assert next_route(small, models, cooling_down=lambda name: name == "gemini").provider == "fal"  # type: ignore[union-attr]
    on_last = job(provider="fal", provider_model="fal-ai/veo3.1")
    assert next_route(on_last, models) is None  # only forward: each route is tried once
    assert has_alternatives(on_last, models)


def test_remixes_and_unknown_models_never_move() -> None:
    models = catalog(routed())
    assert next_route(job(remixed_from_video_id="video_0"), models) is None
    assert not has_alternatives(job(remixed_from_video_id="video_0"), models)
    assert next_route(job(model="gone"), models) is None


def refused_connection() -> UpstreamTransientError:
    try:
        raise requests.ConnectionError(NewConnectionError(None, "refused"))  # type: ignore[arg-type]
    except requests.ConnectionError as error:
        try:
            raise UpstreamTransientError("could not connect") from error
        except UpstreamTransientError as wrapped:
            return wrapped


@pytest.mark.parametrize(
    ("error", "moves"),
    [
        (refused_connection(), True),  # never sent
        (UpstreamTransientError("down", status=503), True),
        (UpstreamAmbiguousError("unavailable", status=503), True),
        (UpstreamRejectedError("retired", code="model_not_found", status=404), True),
        (UpstreamRejectedError("no access", code="permission_denied", status=403), True),
        (UpstreamRejectedError("no adapter", code="provider_unavailable"), True),
        (UpstreamTransientError("internal", status=500), False),  # may have made a job
        (UpstreamAmbiguousError("answer lost"), False),
        (UpstreamAmbiguousError("internal", status=500), False),
        (UpstreamRejectedError("policy", code="content_policy_violation", status=400), False),
        (UpstreamThrottled("slow down", status=429), False),  # waited out where it is
    ],
)
def test_only_a_create_that_certainly_made_nothing_moves_the_job(error: Exception, moves: bool) -> None:
    assert untouched(error) is moves  # type: ignore[arg-type]
