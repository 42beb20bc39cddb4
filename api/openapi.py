"""`GET /api/openapi.json`: the OpenAPI 3.1 document of the API, written from the project's API
reference (`docs/api.md`).

The paths and webhooks live here; the schemas, headers and error responses they share are in
`api.openapi_schema`. `tests/contract` checks real responses against this document and fuzzes
every operation from it, so it stays true to the running gateway.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from api.http import api_errors
from api.openapi_schema import (
    MAX_APP_NAME_CHARS,
    MAX_METADATA_CHARS,
    MAX_NEGATIVE_PROMPT_CHARS,
    MAX_PROMPT_CHARS,
    MAX_USER_CHARS,
    NOT_BLANK,
    OPTION_NAMES,
    PERSON_GENERATION,
    PLANS,
    RATE_LIMIT_HEADERS,
    JsonObject,
    components,
    errors,
    headers,
    integer,
    obj,
    ref,
    schema_ref,
    string,
)
from gateway.catalog import CatalogModel
from gateway.settings import get_settings
from gateway.validation import default_size

bp = df.Blueprint()

APP_KEY: list[JsonObject] = [{"bearer": []}, {"apiKey": []}]
ADMIN_KEY: list[JsonObject] = [{"adminKey": []}]
ANYONE: list[JsonObject] = []
IMAGE_TYPES = "image/jpeg, image/png, image/webp"


def _json(schema: JsonObject) -> JsonObject:
    return {"application/json": {"schema": schema}}


def _response(
    description: str, schema: JsonObject | None = None, response_headers: JsonObject | None = None
) -> JsonObject:
    response: JsonObject = {"description": description}
    if response_headers:
        response["headers"] = response_headers
    if schema is not None:
        response["content"] = _json(schema)
    return response


def _usage_answer() -> JsonObject:
    """GET /v1/usage and the operators' view of an app's usage answer the same."""
    return _response(
        "Plan, limits, use and resets.", schema_ref("Usage"), headers(*RATE_LIMIT_HEADERS, required=False)
    )


def _operation(
    operation_id: str,
    summary: str,
    tag: str,
    security: list[JsonObject],
    responses: JsonObject,
    **more: Any,
) -> JsonObject:
    return {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "security": security,
        **more,
        "responses": responses,
    }


def _prompt() -> JsonObject:
    return string(
        f"Non-blank, at most `MAX_PROMPT_CHARS` (default {MAX_PROMPT_CHARS}) characters.",
        minLength=1,
        maxLength=MAX_PROMPT_CHARS,
        pattern=NOT_BLANK,
    )


def _union(lists: Any) -> list[str]:
    return list(dict.fromkeys(item for values in lists for item in values))


def _seconds_schema(seconds: list[str], *, multipart: bool) -> JsonObject:
    """JSON takes `"8"` or `8`; a form field is always text."""
    return {"enum": seconds} if multipart else {"enum": [*seconds, *map(int, seconds)]}


def _create_fields(catalog: Mapping[str, CatalogModel], *, multipart: bool) -> JsonObject:
    """The create fields of the API reference, their choices the catalog's (any model's); which
    model takes which is in `_per_model_rules`."""
    first = next(iter(catalog.values()))
    seconds = _union(model.seconds for model in catalog.values())
    if multipart:
        reference = string(f"Image-to-video: {IMAGE_TYPES} by content, at most 10 MiB.", format="binary")
    else:
        reference = obj(
            {"image_url": string("Image-to-video: an `https` URL or a `data:` URL of the image.")},
            closed=False,
        )
    seconds_type = {"type": "string"} if multipart else {"type": ["string", "integer"]}
    return {
        "prompt": _prompt(),
        "model": string(
            "A model of the catalog (`GET /v1/models`); an unknown one is 400 `invalid_value`. "
            "Without one, the catalog's first.",
            enum=list(catalog),
            default=first.id,
        ),
        "seconds": {
            "description": "Per model (its `seconds` in `GET /v1/models`); "
            "a value the model does not take is 400 `invalid_value`.",
            **seconds_type,
            **_seconds_schema(seconds, multipart=multipart),
            "default": first.seconds[0],
        },
        "size": string(
            "Per model (its `sizes` in `GET /v1/models`); a size the model does not make is "
            "400 `invalid_value`. Without one, 720x1280 where the model makes it, else its first size.",
            enum=_union(model.sizes for model in catalog.values()),
            default=default_size(first.sizes),
        ),
        "duration": integer("Alias of `seconds`.", enum=[int(value) for value in seconds]),
        "aspect_ratio": string(
            "Alias; with `resolution` picks the model's own size of that shape (portrait by default).",
            enum=["16:9", "landscape", "9:16", "portrait"],
        ),
        "resolution": string(
            "Alias; with `aspect_ratio` picks the model's own size of that shape (720p by default).",
            enum=["720p", "small", "1080p", "large"],
        ),
        "input_reference": reference,
        "webhook_url": string(
            "An `https` URL resolving to no private, loopback or link-local address "
            "(the local stack also allows `http` and loopback).",
            format="uri",
        ),
        # Multipart: a JSON part (see the encoding), or `metadata[<key>]` fields.
        "metadata": schema_ref("Metadata"),
        "user": string("End-user id, stored for auditing.", maxLength=MAX_USER_CHARS),
        **_option_fields(multipart=multipart),
    }


def _option_fields(*, multipart: bool) -> JsonObject:
    """The per-request options, any model's; a model that does not take one (its `options` in
    `GET /v1/models`) answers 400 `unsupported_parameter`."""
    taken = "Extension, only for a model whose `options` list it (else 400 `unsupported_parameter`): "
    # A form field is text: the flag is "true" or "false" there.
    flag = string(enum=["true", "false"]) if multipart else {"type": "boolean"}
    return {
        "negative_prompt": string(
            taken + "what the video should not show.",
            minLength=1,
            maxLength=MAX_NEGATIVE_PROMPT_CHARS,
            pattern=NOT_BLANK,
        ),
        "generate_audio": {"description": taken + "whether the video has sound.", **flag},
        "person_generation": string(
            taken + "whether people may appear; the model's `options` give its values. "
            "With an input image, `allow_all` is 400 `invalid_value`.",
            enum=PERSON_GENERATION,
        ),
    }


def _per_model_rules(catalog: Mapping[str, CatalogModel]) -> list[JsonObject]:
    """What each model takes, as JSON Schema conditionals on `model` (the catalog's first when
    `model` is left out): its sizes and durations, no `input_reference` unless it takes images,
    and only the options it declares, a choice among its own values; with an image, never
    `person_generation: allow_all`."""

    def rules(model: CatalogModel) -> JsonObject:
        properties: JsonObject = {
            "size": {"enum": list(model.sizes)},
            "seconds": _seconds_schema(list(model.seconds), multipart=False),
            "duration": {"enum": [int(value) for value in model.seconds]},
        }
        for name in OPTION_NAMES:
            choices = model.options.get(name)
            if choices is None:
                properties[name] = False  # present at all: 400 unsupported_parameter
            elif choices:
                properties[name] = {"enum": list(choices)}
        then: JsonObject = {"properties": properties}
        if not model.image_input:
            then["not"] = {"required": ["input_reference"]}
        return then

    first = next(iter(catalog.values()))
    conditionals = [
        {"if": {"properties": {"model": {"const": model.id}}, "required": ["model"]}, "then": rules(model)}
        for model in catalog.values()
    ]
    image_persons = {
        "if": {"required": ["input_reference", "person_generation"]},
        "then": {"properties": {"person_generation": {"not": {"const": "allow_all"}}}},
    }
    return [*conditionals, {"if": {"not": {"required": ["model"]}}, "then": rules(first)}, image_persons]


def _body(fields: JsonObject, *, required: tuple[str, ...] = ("prompt",)) -> JsonObject:
    optional = tuple(name for name in fields if name not in required)
    return obj(fields, optional=optional, closed=False)


def _create_body(catalog: Mapping[str, CatalogModel]) -> JsonObject:
    json_body = _body(_create_fields(catalog, multipart=False))
    json_body["allOf"] = _per_model_rules(catalog)
    # The form states the same choices, without the per-model conditionals: schema tools that
    # judge a conditional against a file part fail on it (schemathesis 4 cannot type a binary).
    multipart = _body(_create_fields(catalog, multipart=True))
    multipart["description"] = (
        "Per model, the same sizes, durations, image input and options as the JSON body."
    )
    # The openai SDK sends metadata as `metadata[<key>]` form fields.
    multipart["patternProperties"] = {r"^metadata\[[^\]]+\]$": string(maxLength=MAX_METADATA_CHARS)}
    return {
        "required": True,
        "content": {
            **_json(json_body),
            "multipart/form-data": {
                "schema": multipart,
                "encoding": {
                    "input_reference": {"contentType": IMAGE_TYPES},
                    "metadata": {"contentType": "application/json"},
                },
            },
        },
    }


def _remix_body() -> JsonObject:
    schema = _body({"prompt": _prompt()})
    return {"required": True, "content": {**_json(schema), "multipart/form-data": {"schema": schema}}}


def _accepted() -> JsonObject:
    return _response(
        "Accepted: the new video, `status: queued`.",
        schema_ref("Video"),
        headers("Location", "Retry-After", *RATE_LIMIT_HEADERS),
    )


def _query(name: str, description: str, schema: JsonObject) -> JsonObject:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def _paging(cursor: str, order: str) -> list[JsonObject]:
    """The list operations' query parameters, shaped like OpenAI's: `limit`, `after`, `order`."""
    return [
        _query("limit", "Page size.", integer(minimum=1, maximum=100, default=20)),
        _query(
            "after",
            f"Cursor: {cursor}; the page starts after it.",
            string(pattern="^[A-Za-z0-9_-]*$", maxLength=128),
        ),
        _query("order", order, string(enum=["asc", "desc"], default="desc")),
    ]


def _video_paths(catalog: Mapping[str, CatalogModel]) -> JsonObject:
    video_id = [ref("parameters", "VideoId")]
    return {
        "/v1/videos": {
            "post": _operation(
                "createVideo",
                "Create a video from a prompt (and optionally an image)",
                "videos",
                APP_KEY,
                {"202": _accepted(), **errors("400", "401", "403", "404", "409", "413", "415", "429", "503")},
                description="Counts against the app's quota when accepted.",
                parameters=[ref("parameters", "IdempotencyKey")],
                requestBody=_create_body(catalog),
            ),
            "get": _operation(
                "listVideos",
                "List the caller's videos, newest first by default",
                "videos",
                APP_KEY,
                {
                    "200": _response("One page of videos.", schema_ref("VideoList")),
                    **errors("400", "401", "503"),
                },
                parameters=_paging("a video id", "Sort order by creation."),
            ),
        },
        "/v1/videos/{video_id}": {
            "parameters": video_id,
            "get": _operation(
                "retrieveVideo",
                "Retrieve a video",
                "videos",
                APP_KEY,
                {
                    "200": _response(
                        "The video; while not finished, with when to poll again.",
                        schema_ref("Video"),
                        headers("openai-poll-after-ms", "Retry-After", required=False),
                    ),
                    **errors("401", "404", "503"),
                },
            ),
            "delete": _operation(
                "deleteVideo",
                "Cancel a video in flight (it fails with `cancelled`) or delete a finished one's assets",
                "videos",
                APP_KEY,
                {"200": _response("Deleted.", schema_ref("DeletedVideo")), **errors("401", "404", "503")},
            ),
        },
        "/v1/videos/{video_id}/content": {
            "parameters": video_id,
            "get": _operation(
                "downloadVideoContent",
                "Download the video or its thumbnail",
                "videos",
                APP_KEY,
                {
                    "302": _response(
                        "Redirect to a fresh read-only SAS URL of the asset.",
                        None,
                        {
                            "Location": {
                                "description": "The SAS URL.",
                                "required": True,
                                "schema": string(format="uri"),
                            }
                        },
                    ),
                    **errors("400", "401", "404", "409", "503"),
                },
                description="404 for an unknown id, a missing variant or `video_expired`; "
                "409 `video_not_ready` while not `completed`.",
                parameters=[
                    _query("variant", "Which asset.", string(enum=["video", "thumbnail"], default="video"))
                ],
            ),
        },
        "/v1/videos/{video_id}/remix": {
            "parameters": video_id,
            "post": _operation(
                "remixVideo",
                "Remix a completed video of the caller's with a new prompt",
                "videos",
                APP_KEY,
                {"202": _accepted(), **errors("400", "401", "403", "404", "409", "413", "415", "429", "503")},
                description="Counts against the app's quota like create; 409 while the source is not completed.",
                requestBody=_remix_body(),
            ),
        },
    }


def _management_paths() -> JsonObject:
    app_id = [ref("parameters", "AppId")]
    plan = string(enum=PLANS)
    note = "404 `not_found` for every management call when `ADMIN_API_KEY` is not set."
    return {
        "/v1/manage/apps": {
            "post": _operation(
                "createApp",
                "Create an app; its secrets are shown only in this response",
                "management",
                ADMIN_KEY,
                {
                    "201": _response("Created.", schema_ref("AppWithSecrets")),
                    **errors("400", "401", "404", "413", "503"),
                },
                description=note,
                requestBody={
                    "required": True,
                    "content": _json(
                        obj(
                            {
                                "name": string(minLength=1, maxLength=MAX_APP_NAME_CHARS, pattern=NOT_BLANK),
                                "plan": plan,
                            },
                            closed=False,
                        )
                    ),
                },
            ),
            "get": _operation(
                "listApps",
                "List the apps (without secrets), newest first by default",
                "management",
                ADMIN_KEY,
                {
                    "200": _response("One page of apps.", schema_ref("AppList")),
                    **errors("400", "401", "404", "503"),
                },
                description=note + " Pages like `GET /v1/videos`; 400 `invalid_value` (`param: after`) "
                "when `after` is not the id of an app.",
                parameters=_paging("an app id", "Sort order by creation (then id)."),
            ),
        },
        "/v1/manage/apps/{app_id}": {
            "parameters": app_id,
            "get": _operation(
                "getApp",
                "Read an app (without secrets)",
                "management",
                ADMIN_KEY,
                {"200": _response("The app.", schema_ref("App")), **errors("401", "404", "503")},
                description=note,
            ),
            "patch": _operation(
                "updateApp",
                "Change an app's plan or its own budget; it applies from the next request",
                "management",
                ADMIN_KEY,
                {
                    "200": _response("The app.", schema_ref("App")),
                    **errors("400", "401", "404", "413", "503"),
                },
                description=note,
                requestBody={
                    "required": True,
                    "content": _json(
                        obj(
                            {
                                "plan": plan,
                                "budget": {
                                    "description": "The app's own budget, replacing its plan's: the fields of "
                                    "a `PLAN_BUDGETS` entry (`month`, `day`, `threshold`, `charge_refused`, "
                                    "`charge_failed`); null: its plan's again. Without `budget`, `plan` is required.",
                                    "anyOf": [{"type": "object"}, {"type": "null"}],
                                },
                            },
                            optional=("plan", "budget"),
                            closed=False,
                        )
                    ),
                },
            ),
        },
        "/v1/manage/apps/{app_id}/usage": {
            "parameters": app_id,
            "get": _operation(
                "getAppUsage",
                "An app's plan and quota, as the app reads them at GET /v1/usage",
                "management",
                ADMIN_KEY,
                {
                    "200": _usage_answer(),
                    **errors("401", "404", "503"),
                },
                description=note,
            ),
        },
        "/v1/manage/failures": {
            "get": _operation(
                "listFailures",
                "The newest failed videos across apps, with counts by code and provider",
                "management",
                ADMIN_KEY,
                {
                    "200": _response("Failures since `since`, newest first.", schema_ref("FailureList")),
                    **errors("400", "401", "404", "503"),
                },
                description=note + " Reads every failed job of the window (a filtered scan of the jobs "
                "table); failed records are kept `VIDEO_RETENTION_DAYS`.",
                parameters=[
                    _query("limit", "How many to list.", integer(minimum=1, maximum=100, default=50)),
                    _query(
                        "since",
                        "Unix seconds, not in the future: the window's start. Default: 24 hours ago.",
                        integer(minimum=0),
                    ),
                ],
            ),
        },
        "/v1/manage/apps/{app_id}/keys": {
            "parameters": app_id,
            "post": _operation(
                "rotateAppKey",
                "Give the app a new key; the old one stops working at once",
                "management",
                ADMIN_KEY,
                {
                    "200": _response("The new key.", schema_ref("AppKey")),
                    **errors("401", "404", "409", "503"),
                },
                description=note + " 409 `concurrent_update` (with `Retry-After`) when another rotation of "
                "the app won a race with this one or the key was rotated less than 10 s ago.",
            ),
        },
    }


def _model_paths() -> JsonObject:
    return {
        "/v1/models": {
            "get": _operation(
                "listModels",
                "The models of the catalog, with what each makes and takes",
                "models",
                APP_KEY,
                {"200": _response("Every model offered.", schema_ref("ModelList")), **errors("401", "503")},
            ),
        },
        "/v1/models/{model_id}": {
            "parameters": [ref("parameters", "ModelId")],
            "get": _operation(
                "retrieveModel",
                "One model of the catalog",
                "models",
                APP_KEY,
                {"200": _response("The model.", schema_ref("Model")), **errors("401", "404", "503")},
                description="404 `model_not_found` for an id the catalog does not have.",
            ),
        },
    }


def _other_paths() -> JsonObject:
    return {
        "/v1/usage": {
            "get": _operation(
                "getUsage",
                "The caller's plan and quota",
                "usage",
                APP_KEY,
                {
                    "200": _usage_answer(),
                    **errors("401", "503"),
                },
            ),
        },
        "/health": {
            "get": _operation(
                "getHealth",
                "Is storage reachable?",
                "operations",
                ANYONE,
                {"200": _response("Storage is reachable.", schema_ref("Health")), **errors("503")},
            ),
        },
        "/openapi.json": {
            "get": _operation(
                "getOpenApiDocument",
                "This document",
                "operations",
                ANYONE,
                {
                    "200": _response(
                        "The OpenAPI 3.1 document.",
                        {"type": "object", "required": ["openapi", "info", "paths"]},
                    )
                },
            ),
        },
    }


def _webhook(event: str, schema: str) -> JsonObject:
    def header(name: str, description: str, schema: JsonObject) -> JsonObject:
        return {"name": name, "in": "header", "required": True, "description": description, "schema": schema}

    signature = r"^v1,[A-Za-z0-9+/]+={0,2}( v1,[A-Za-z0-9+/]+={0,2})*$"
    return {
        "post": {
            "operationId": event.replace(".", "_"),
            "summary": f"`{event}`, POSTed to the video's `webhook_url`",
            "description": "Signed per Standard Webhooks with the app's `webhook_secret`; a non-2xx answer "
            "or a timeout is retried with growing delays (at least 5 attempts over at least 10 minutes).",
            "tags": ["webhooks"],
            "security": ANYONE,
            "parameters": [
                header("webhook-id", "The event id.", string()),
                header("webhook-timestamp", "Unix seconds of this attempt.", string(pattern="^[0-9]+$")),
                header(
                    "webhook-signature",
                    'Base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}".',
                    string(pattern=signature),
                ),
            ],
            "requestBody": {"required": True, "content": _json(schema_ref(schema))},
            "responses": {"2XX": {"description": "Received; anything else is retried."}},
        }
    }


def openapi_document(catalog: Mapping[str, CatalogModel]) -> JsonObject:
    """The document of a gateway offering `catalog`'s models (the request schemas list them)."""
    if not catalog:
        raise ValueError("a gateway offers at least one model")
    models = ", ".join(f"`{model.id}` ({model.provider})" for model in catalog.values())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Sora video gateway",
            "version": "1.0.0",
            "description": "Text or image to video with the providers of its model catalog (Azure OpenAI, "
            "OpenAI-compatible services, AI/ML API, GeminiGen), wire-compatible with the OpenAI Videos API (`OpenAI(base_url='<host>/api/v1', api_key=<app key>)`). Every error "
            "uses the OpenAI error body. This deployment's models: " + models + ".",
        },
        "servers": [{"url": "/api"}],
        "tags": [
            {"name": name} for name in ("videos", "models", "usage", "management", "operations", "webhooks")
        ],
        "paths": {**_video_paths(catalog), **_model_paths(), **_other_paths(), **_management_paths()},
        "webhooks": {
            "video.completed": _webhook("video.completed", "VideoCompletedEvent"),
            "video.failed": _webhook("video.failed", "VideoFailedEvent"),
            "budget.threshold": _webhook("budget.threshold", "BudgetThresholdEvent"),
        },
        "components": components(),
    }


@functools.cache
def _serialized() -> str:
    # Settings change only with a restart, so the document is built once per process.
    return json.dumps(openapi_document(get_settings().catalog), separators=(",", ":"))


@bp.route(route="openapi.json", methods=["GET"])
@api_errors
def openapi_json(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(_serialized(), status_code=200, mimetype="application/json", charset="utf-8")
