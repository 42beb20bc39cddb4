"""Building blocks of the OpenAPI document: JSON Schema helpers and the `components` section.

Written from the project's API reference (`docs/api.md`), not derived from the code, so the
contract tests that check real responses against it catch the code drifting from the reference.
Response objects are closed (`additionalProperties: false`): an undocumented field is drift too.
"""

from __future__ import annotations

from typing import Any

JsonObject = dict[str, Any]

PLANS = ["free", "pro", "business"]
WINDOWS = ["hour", "day"]
BUDGET_WINDOWS = ["day", "month"]
VIDEO_STATUSES = ["queued", "in_progress", "completed", "failed"]
MAX_PROMPT_CHARS = 4000
MAX_METADATA_ITEMS = 16
MAX_METADATA_CHARS = 512
MAX_USER_CHARS = 256
MAX_APP_NAME_CHARS = 200
# Ids are opaque but URL-safe: they travel as path segments.
ID_PATTERN = "^[A-Za-z0-9_-]+$"
MODEL_ID_PATTERN = "^[A-Za-z0-9._-]+$"  # the catalog's public ids, e.g. `veo-3.1`
NOT_BLANK = r"\S"
# The per-request options of the API reference, which a model takes only when its `options` say so.
OPTION_NAMES = ["negative_prompt", "generate_audio", "person_generation"]
MAX_NEGATIVE_PROMPT_CHARS = 1000
PERSON_GENERATION = ["allow_all", "allow_adult", "dont_allow"]


def ref(kind: str, name: str) -> JsonObject:
    return {"$ref": f"#/components/{kind}/{name}"}


def schema_ref(name: str) -> JsonObject:
    return ref("schemas", name)


def nullable(schema: JsonObject) -> JsonObject:
    """`schema` or null: a type list where the schema has a type, else `anyOf` (for `$ref`s)."""
    if "$ref" in schema or "type" not in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    return {**schema, "type": [*types, "null"]}


def string(description: str | None = None, **keywords: Any) -> JsonObject:
    return _described({"type": "string", **keywords}, description)


def integer(description: str | None = None, **keywords: Any) -> JsonObject:
    return _described({"type": "integer", **keywords}, description)


def const(value: Any, description: str | None = None) -> JsonObject:
    return _described({"const": value}, description)


def obj(
    properties: JsonObject,
    *,
    optional: tuple[str, ...] = (),
    closed: bool = True,
    description: str | None = None,
    **keywords: Any,
) -> JsonObject:
    """An object whose properties are all required except `optional` ones."""
    schema: JsonObject = {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        **keywords,
    }
    if closed:
        schema["additionalProperties"] = False
    return _described(schema, description)


def per_window(schema: JsonObject) -> JsonObject:
    return obj(dict.fromkeys(WINDOWS, schema))


def _described(schema: JsonObject, description: str | None) -> JsonObject:
    return {"description": description, **schema} if description else schema


def _provider_details() -> JsonObject:
    """One provider account's record in GET /api/health (gateway.health.ProviderState)."""
    count = integer(minimum=0)
    number = {"type": ["number", "null"]}
    return obj(
        {
            "accepted": count,
            "refused": count,
            "failed": count,
            "throttled": count,
            "consecutive_failures": count,
            "last_outcome": {
                "type": ["string", "null"],
                "enum": ["accepted", "refused", "failed", "throttled", None],
            },
            "last_outcome_at": number,
            "latency_ms": number,
            "cooling_down_until": number,
        }
    )


def _video_rules() -> list[JsonObject]:
    """What one field says about another, per the Video object table of the API reference."""
    completed = {"properties": {"status": {"const": "completed"}}}
    queued = {"properties": {"status": {"const": "queued"}}}
    failed = {"properties": {"status": {"const": "failed"}}}
    return [
        {
            "if": completed,
            "then": {"properties": {"progress": {"const": 100}}},
            "else": {
                "properties": {
                    "progress": {"maximum": 99},
                    "video_url": {"type": "null"},
                    "download_url": {"type": "null"},
                    "thumbnail_url": {"type": "null"},
                }
            },
        },
        {"if": queued, "else": {"properties": {"queue_position": {"type": "null"}}}},
        {
            "if": {"properties": {"status": {"enum": ["completed", "failed"]}}},
            "then": {"properties": {"estimated_completion_at": {"type": "null"}}},
        },
        {
            "if": failed,
            "then": {"properties": {"error": {"type": "object"}}},
            "else": {"properties": {"error": {"type": "null"}}},
        },
    ]


def _video() -> JsonObject:
    timestamp = integer(minimum=0)
    return obj(
        {
            "id": string("Opaque job id, also the orchestration instance id.", pattern=ID_PATTERN),
            "object": const("video"),
            "status": string(enum=VIDEO_STATUSES),
            "progress": integer("0-100; 100 only when `completed`.", minimum=0, maximum=100),
            # Not the catalog's enums: a video keeps its model after the catalog drops it.
            "model": string("The catalog model it was made with.", pattern=MODEL_ID_PATTERN),
            "seconds": string(pattern="^[0-9]+$", examples=["4", "8"]),
            "size": string(pattern="^[0-9]+x[0-9]+$", examples=["1280x720", "720x1280"]),
            "prompt": string(),
            "created_at": integer("Unix seconds.", minimum=0),
            "completed_at": nullable(timestamp),
            "expires_at": nullable(integer("Unix seconds at which the stored MP4 is deleted.", minimum=0)),
            "error": nullable(schema_ref("VideoError")),
            "remixed_from_video_id": nullable(string(pattern=ID_PATTERN)),
            "video_url": nullable(
                string(
                    "Extension: read-only SAS URL of the MP4, fresh on every read; only when `completed`.",
                    format="uri",
                )
            ),
            "download_url": nullable(
                string(
                    "Extension: the same MP4 as `video_url`, signed so that Storage answers it as an "
                    "attachment named `<id>.mp4` (a browser saves it).",
                    format="uri",
                )
            ),
            "thumbnail_url": nullable(
                string("Extension: SAS URL of the thumbnail when one was stored.", format="uri")
            ),
            "metadata": schema_ref("Metadata"),
            "queue_position": nullable(
                integer(
                    "Extension: while `queued`, how many jobs start first: behind the gateway's pacing "
                    "of the upstream, or in the provider's own queue when it reports one (fal).",
                    minimum=0,
                )
            ),
            "estimated_completion_at": nullable(
                integer(
                    "Extension: Unix seconds at which the video is expected to be ready, learned from how "
                    "long jobs of the same provider, model, size and duration took (and from progress, "
                    "where the provider reports it); `null` when there is nothing to base it on yet "
                    "and once the job has finished. Never earlier than the time of the answer.",
                    minimum=0,
                )
            ),
            "estimated_cost": nullable(schema_ref("EstimatedCost")),
            "cost": {
                "description": "Extension: what the video was charged once it ended (the catalog's price; 0 "
                "when its money went back under the plan's charge policy); `null` until then.",
                **nullable(schema_ref("EstimatedCost")),
            },
            "provider": string(
                "Extension: the provider account making the video; a job stays with the provider that accepted it."
            ),
            "options": obj(
                {
                    "negative_prompt": string(minLength=1, maxLength=MAX_NEGATIVE_PROMPT_CHARS),
                    "generate_audio": {"type": "boolean"},
                    "person_generation": string(enum=PERSON_GENERATION),
                },
                optional=("negative_prompt", "generate_audio", "person_generation"),
                description="Extension: the per-request options the video was asked for; `{}`: none "
                "(a remix takes none).",
            ),
        },
        description="OpenAI's Video object plus the gateway's extensions.",
        allOf=_video_rules(),
    )


def _option_schemas() -> JsonObject:
    """A Model's `options`: each option it takes with the JSON Schema of its value, pinned to the
    reference's types and limits (a choice lists the model's own values)."""
    described = {"description": string()}
    return {
        "type": "object",
        "description": "Extension: the per-request options the model takes, each with the JSON Schema "
        "of its value; `{}`: none.",
        "properties": {
            "negative_prompt": obj(
                {
                    "type": const("string"),
                    "minLength": const(1),
                    "maxLength": const(MAX_NEGATIVE_PROMPT_CHARS),
                    **described,
                }
            ),
            "generate_audio": obj({"type": const("boolean"), **described}),
            "person_generation": obj(
                {
                    "type": const("string"),
                    "enum": {
                        "type": "array",
                        "items": string(enum=PERSON_GENERATION),
                        "minItems": 1,
                        "uniqueItems": True,
                    },
                    **described,
                }
            ),
        },
        "additionalProperties": False,
    }


def _error_body(*, with_window: bool) -> JsonObject:
    fields: JsonObject = {
        "message": string(),
        "type": string(examples=["invalid_request_error", "authentication_error", "rate_limit_error"]),
        "param": nullable(string()),
        "code": string(examples=["invalid_value", "invalid_api_key", "video_not_found"]),
        "window": string(
            "Only on 429 `rate_limit_exceeded` (hour, day) and `budget_exceeded` (day, month): the exhausted window.",
            enum=[*WINDOWS, "month"],
        ),
        "resets_at": integer(
            "Only on 429 `budget_exceeded`: Unix seconds at which the budget window ends (UTC).", minimum=0
        ),
    }
    inner = obj(fields, optional=("window", "resets_at"))
    return obj({"error": inner}, description="The OpenAI error body.")


def _budget() -> JsonObject:
    """The `budget` block of GET /v1/usage: money per calendar window (UTC)."""
    amount = {"type": "number", "minimum": 0}
    window = obj(
        {
            "start": string("The window: `YYYY-MM-DD` (day) or `YYYY-MM` (month), UTC."),
            "limit": {"description": "The plan's budget for the window; null: no limit.", **nullable(amount)},
            "spent": {"description": "Charged by videos that ended (settled).", **amount},
            "reserved": {"description": "Estimated cost of videos admitted and not yet settled.", **amount},
            "remaining": {
                "description": "limit - spent - reserved, at least 0; null: no limit.",
                **nullable(amount),
            },
            "resets_at": integer("Unix seconds at which the window ends.", minimum=0),
        }
    )
    return obj(
        {"currency": const("USD"), **dict.fromkeys(BUDGET_WINDOWS, window)},
        description="Extension: the app's money, per calendar window (UTC).",
    )


def _event(event_type: str, status: str) -> JsonObject:
    return obj(
        {
            "id": string("Event id; also sent as `webhook-id`."),
            "type": const(event_type),
            "created_at": integer("Unix seconds.", minimum=0),
            "data": {"allOf": [schema_ref("Video"), {"properties": {"status": {"const": status}}}]},
        }
    )


def _budget_event() -> JsonObject:
    """`budget.threshold`: sent once per budget window, to the webhook URL of the create that
    took the window's committed money past the plan's threshold."""
    amount = {"type": "number", "minimum": 0}
    data = obj(
        {
            "object": const("budget.threshold"),
            "app_id": string(pattern=ID_PATTERN),
            "window": string(enum=BUDGET_WINDOWS),
            "start": string("The window: `YYYY-MM-DD` (day) or `YYYY-MM` (month), UTC."),
            "threshold": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            "currency": const("USD"),
            "limit": amount,
            "spent": amount,
            "reserved": amount,
            "remaining": amount,
            "resets_at": integer("Unix seconds at which the window ends.", minimum=0),
        }
    )
    return obj(
        {
            "id": string("`evt_budget_<app>_<window>_<start>`; also sent as `webhook-id`."),
            "type": const("budget.threshold"),
            "created_at": integer("Unix seconds.", minimum=0),
            "data": data,
        }
    )


def _app_fields() -> JsonObject:
    return {
        "id": string(pattern=ID_PATTERN),
        "object": const("app"),
        "name": string(),
        "plan": string(enum=PLANS),
        "created_at": integer("Unix seconds.", minimum=0),
    }


def _secrets() -> JsonObject:
    return {
        "api_key": string("Shown only here; stored as a hash.", minLength=22),
        "webhook_secret": string(
            "Standard Webhooks secret: `whsec_` + base64 of 32 random bytes.",
            pattern="^whsec_[A-Za-z0-9+/]{43}=$",
        ),
    }


def component_schemas() -> JsonObject:
    count = integer(minimum=0)
    return {
        "Video": _video(),
        "VideoError": obj({"code": string(examples=["cancelled", "timeout"]), "message": string()}),
        "EstimatedCost": obj({"amount": {"type": "number", "minimum": 0}, "currency": const("USD")}),
        "Metadata": {
            "type": "object",
            "description": "The caller's string map, echoed.",
            "maxProperties": MAX_METADATA_ITEMS,
            "propertyNames": {"maxLength": MAX_METADATA_CHARS},
            "additionalProperties": string(maxLength=MAX_METADATA_CHARS),
        },
        "Model": obj(
            {
                "id": string("The public model id to send as `model`.", pattern=MODEL_ID_PATTERN),
                "object": const("model"),
                "created": integer("Unix seconds; 0: the catalog does not record it.", minimum=0),
                "owned_by": string("The provider account that makes this model's videos."),
                "sizes": {"type": "array", "items": string(pattern="^[0-9]+x[0-9]+$"), "minItems": 1},
                "seconds": {"type": "array", "items": string(pattern="^[0-9]+$"), "minItems": 1},
                "image_input": {"type": "boolean", "description": "Whether `input_reference` is taken."},
                "remix": {"type": "boolean", "description": "Whether its videos can be remixed."},
                "price_per_second": {
                    "description": "USD per second of video: one number, or one per size; null: not priced.",
                    "anyOf": [
                        {"type": "number", "minimum": 0},
                        {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}},
                        {"type": "null"},
                    ],
                },
                "options": _option_schemas(),
            },
            description="OpenAI's Model object plus what the model makes and takes.",
        ),
        "ModelList": obj({"object": const("list"), "data": {"type": "array", "items": schema_ref("Model")}}),
        "VideoList": obj(
            {
                "object": const("list"),
                "data": {"type": "array", "items": schema_ref("Video")},
                "first_id": nullable(string(pattern=ID_PATTERN)),
                "last_id": nullable(string(pattern=ID_PATTERN)),
                "has_more": {"type": "boolean"},
            }
        ),
        "DeletedVideo": obj(
            {"id": string(pattern=ID_PATTERN), "object": const("video.deleted"), "deleted": const(True)}
        ),
        "Usage": obj(
            {
                "plan": string(enum=PLANS),
                "video_enabled": {"type": "boolean"},
                "limits": per_window(count),
                "used": per_window(count),
                "remaining": per_window(count),
                "resets_at": per_window(
                    nullable(integer("Unix seconds at which one more slot frees.", minimum=0))
                ),
                "budget": _budget(),
            }
        ),
        "App": obj(_app_fields(), optional=("object",)),
        "AppList": obj(
            {
                "object": const("list"),
                "data": {"type": "array", "items": schema_ref("App")},
                "first_id": nullable(string(pattern=ID_PATTERN)),
                "last_id": nullable(string(pattern=ID_PATTERN)),
                "has_more": {"type": "boolean"},
            }
        ),
        "Failure": obj(
            {
                "id": string("The failed video.", pattern=ID_PATTERN),
                "object": const("video.failure"),
                "app_id": string(pattern=ID_PATTERN),
                "model": string(),
                "provider": nullable(string("The provider account the job was with.")),
                "error": schema_ref("VideoError"),
                "created_at": count,
                "completed_at": nullable(count),
            }
        ),
        "FailureList": obj(
            {
                "object": const("list"),
                "data": {"type": "array", "items": schema_ref("Failure")},
                "has_more": {"type": "boolean"},
                "since": integer("The window's start, Unix seconds.", minimum=0),
                "counts": obj(
                    {
                        "by_code": {"type": "object", "additionalProperties": count},
                        "by_provider": {"type": "object", "additionalProperties": count},
                    },
                    description="Every failure in the window (not just this page), by code and by provider.",
                ),
            }
        ),
        "AppWithSecrets": obj({**_app_fields(), **_secrets()}, optional=("object",)),
        "AppKey": obj({"api_key": _secrets()["api_key"]}),
        "Health": obj(
            {
                "status": string(enum=["ok", "unavailable"]),
                "providers": {
                    "type": "object",
                    "description": "Every configured provider account: `down` while it cools down after failures.",
                    "additionalProperties": string(enum=["up", "down"]),
                },
                "provider_details": {
                    "type": "object",
                    "description": "With a valid `x-admin-key` only: each account's recent record.",
                    "additionalProperties": _provider_details(),
                },
            },
            optional=("providers", "provider_details"),
            closed=False,
            description="Storage reachability and provider accounts; more fields may follow.",
        ),
        "Error": _error_body(with_window=False),
        "RateLimitError": _error_body(with_window=True),
        "VideoCompletedEvent": _event("video.completed", "completed"),
        "VideoFailedEvent": _event("video.failed", "failed"),
        "BudgetThresholdEvent": _budget_event(),
    }


# Response headers by wire name. Inlined where used (a `$ref`'d header cannot vary `required`).
HEADERS: dict[str, tuple[str, JsonObject]] = {
    "Location": ("Where to poll the new video: `/api/v1/videos/{id}`.", string()),
    "Retry-After": ("Whole seconds to wait before trying or polling again.", integer(minimum=1)),
    "openai-poll-after-ms": (
        "Milliseconds before the next poll is worth it (the openai SDK's `poll` honours it).",
        integer(minimum=0),
    ),
    "x-ratelimit-limit-hour": ("The app's videos per rolling hour.", integer(minimum=0)),
    "x-ratelimit-remaining-hour": ("Videos left in the rolling hour.", integer(minimum=0)),
    "x-ratelimit-limit-day": ("The app's videos per rolling day.", integer(minimum=0)),
    "x-ratelimit-remaining-day": ("Videos left in the rolling day.", integer(minimum=0)),
    "x-budget-remaining": (
        "What the app's tightest budget window has left, in the catalog's currency with six decimals, "
        "after this request's reservation; `unlimited` when its plan has no budget.",
        string(pattern="^(unlimited|[0-9]+\\.[0-9]{6})$"),
    ),
}
RATE_LIMIT_HEADERS = (
    "x-ratelimit-limit-hour",
    "x-ratelimit-remaining-hour",
    "x-ratelimit-limit-day",
    "x-ratelimit-remaining-day",
    "x-budget-remaining",
)


def headers(*names: str, required: bool = True) -> JsonObject:
    out: JsonObject = {}
    for name in names:
        description, schema = HEADERS[name]
        out[name] = {"description": description, "required": required, "schema": schema}
    return out


def component_parameters() -> JsonObject:
    def path_id(name: str, description: str) -> JsonObject:
        return {
            "name": name,
            "in": "path",
            "required": True,
            "description": description,
            "schema": string(pattern=ID_PATTERN, maxLength=128),
        }

    return {
        "VideoId": path_id("video_id", "A video id of the calling app."),
        "AppId": path_id("app_id", "An app id."),
        "ModelId": {
            **path_id("model_id", "A model id of the catalog."),
            "schema": string(pattern=MODEL_ID_PATTERN, maxLength=128),
        },
        "IdempotencyKey": {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "The same key from the same app within 24 h returns the first job again; "
            "with a different body it is 409 `idempotency_key_reused`.",
            "schema": string(minLength=1, maxLength=255, pattern=NOT_BLANK),
        },
    }


# status -> (component name, description listing the codes API.md names)
ERRORS: dict[str, tuple[str, str]] = {
    "400": (
        "BadRequest",
        "Codes `invalid_json`, `missing_required_parameter`, `invalid_value` (`param` names the field), "
        "`unsupported_parameter` (an option the model does not take; `param` names it), "
        "`conflicting_parameters`, `image_too_large` (more pixels than 4096x4096).",
    ),
    "401": ("Unauthorized", "Missing or unknown key: `invalid_api_key` (management: `invalid_admin_key`)."),
    "403": ("Forbidden", "The app's plan may not generate video: `plan_not_allowed`."),
    "404": (
        "NotFound",
        "Unknown id, or another app's: `video_not_found` / `app_not_found` / `model_not_found`.",
    ),
    "409": (
        "Conflict",
        "`video_not_ready`, `idempotency_key_reused`, `idempotency_request_in_progress` (with "
        "`Retry-After`), `concurrent_update` (a key rotation lost a race; with `Retry-After`).",
    ),
    "413": (
        "PayloadTooLarge",
        "The request body (or the image) is too large: `payload_too_large`, `image_too_large`.",
    ),
    "415": (
        "UnsupportedMediaType",
        "Unsupported content type (`unsupported_media_type`) or image type (`unsupported_image_type`).",
    ),
    "429": (
        "RateLimited",
        "Over the app's quota: `rate_limit_exceeded` (with `window` and the rate-limit headers); over its "
        "money budget: `budget_exceeded` (type `insufficient_quota`, with `window`, `resets_at` and "
        "`Retry-After` until the window ends); or more "
        "requests with images, webhooks or large bodies of this app in progress at once: "
        "`too_many_concurrent_requests`.",
    ),
    "503": (
        "ServiceUnavailable",
        "Try again after `Retry-After`: `storage_unavailable` (storage did not answer in time), "
        "`service_unavailable`; health: `storage_unreachable`.",
    ),
}


def component_responses() -> JsonObject:
    responses: JsonObject = {}
    for name, description in ERRORS.values():
        responses[name] = {
            "description": description,
            "content": {"application/json": {"schema": schema_ref("Error")}},
        }
    responses["RateLimited"]["content"]["application/json"]["schema"] = schema_ref("RateLimitError")
    # Quota refusals carry the rate-limit headers; refusals of concurrent slow work do not.
    responses["RateLimited"]["headers"] = {
        **headers("Retry-After"),
        **headers(*RATE_LIMIT_HEADERS, required=False),
    }
    for name in ("Conflict", "ServiceUnavailable"):
        responses[name]["headers"] = headers("Retry-After", required=False)
    return responses


def errors(*statuses: str) -> JsonObject:
    return {status: ref("responses", ERRORS[status][0]) for status in statuses}


def security_schemes() -> JsonObject:
    return {
        "bearer": {"type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <app key>`."},
        "apiKey": {
            "type": "apiKey",
            "in": "header",
            "name": "api-key",
            "description": "`api-key: <app key>`.",
        },
        "adminKey": {
            "type": "apiKey",
            "in": "header",
            "name": "x-admin-key",
            "description": "Management: the `ADMIN_API_KEY` setting; unset, management answers 404.",
        },
    }


def components() -> JsonObject:
    return {
        "schemas": component_schemas(),
        "parameters": component_parameters(),
        "responses": component_responses(),
        "securitySchemes": security_schemes(),
    }
