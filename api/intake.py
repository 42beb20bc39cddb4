"""From a create or remix request's fields to a `Submission` (or a 4xx naming the field).

May fetch an `input_reference` image URL, so it runs off the event loop.
"""

from __future__ import annotations

from typing import Any

from api.forms import RequestFields
from gateway.errors import InvalidRequest
from gateway.idempotency import MAX_KEY_CHARS
from gateway.images import MAX_IMAGE_BYTES, ReferenceImage, prepare_reference_image
from gateway.jobs import Job
from gateway.settings import DEFAULT_PROVIDER, Settings
from gateway.submissions import Submission
from gateway.urls import check_public_url, decode_data_url, fetch_limited
from gateway.validation import VideoSpec, metadata_of, parse_video_spec, prompt_of, user_of

REFERENCE = "input_reference"


def create_submission(fields: RequestFields, settings: Settings, idempotency_key: str | None) -> Submission:
    spec = parse_video_spec(fields.values, settings)
    model = settings.catalog[spec.model]
    if not model.image_input and (REFERENCE in fields.files or fields.values.get(REFERENCE) is not None):
        # Checked before the image is fetched or fitted, and before any quota is taken.
        raise InvalidRequest(
            f"Model '{model.id}' does not take an input image; send no 'input_reference', "
            "or choose a model that takes one (GET /v1/models).",
            code="invalid_value",
            param=REFERENCE,
        )
    return Submission(
        spec=spec,
        reference=_reference_image(fields, spec.size, settings),
        webhook_url=_webhook_url(fields.values.get("webhook_url"), settings),
        idempotency_key=_idempotency_key(idempotency_key),
        provider=model.provider,
        provider_model=model.provider_model,
    )


def remix_submission(
    fields: RequestFields, source: Job, settings: Settings, idempotency_key: str | None
) -> Submission:
    """A remix keeps its source's model, duration, size and provider; only the prompt is new."""
    model = settings.catalog.get(source.model)
    if model is None or not model.remix:
        raise InvalidRequest(
            f"Videos of model '{source.model}' cannot be remixed.", code="invalid_value", param="video_id"
        )
    spec = VideoSpec(
        prompt=prompt_of(fields.values, settings),
        model=source.model,
        seconds=source.seconds,
        size=source.size,
        metadata=metadata_of(fields.values.get("metadata")),
        user=user_of(fields.values.get("user")),
    )
    return Submission(
        spec=spec,
        remixed_from=source.id,
        webhook_url=_webhook_url(fields.values.get("webhook_url"), settings),
        idempotency_key=_idempotency_key(idempotency_key),
        # Jobs from before providers ran on the default account, under the settings' deployment.
        provider=source.provider or DEFAULT_PROVIDER,
        provider_model=source.provider_model or settings.deployments.get(source.model, source.model),
    )


def _idempotency_key(raw: str | None) -> str | None:
    if raw is None:
        return None
    key = raw.strip()
    if not key or len(key) > MAX_KEY_CHARS:
        raise InvalidRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_CHARS} characters.",
            code="invalid_value",
            param="Idempotency-Key",
        )
    return key


def _webhook_url(value: Any, settings: Settings) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 2048:
        raise InvalidRequest("'webhook_url' must be a URL string.", code="invalid_value", param="webhook_url")
    check_public_url(value, param="webhook_url", allow_local=settings.allow_local_urls)
    return value


def _reference_image(fields: RequestFields, size: str, settings: Settings) -> ReferenceImage | None:
    uploaded = fields.files.get(REFERENCE)
    if uploaded is not None:
        return prepare_reference_image(uploaded.content, size)
    value = fields.values.get(REFERENCE)
    if value is None:
        return None
    url = value.get("image_url") if isinstance(value, dict) else value
    if not isinstance(url, str) or not url:
        raise InvalidRequest(
            "'input_reference' must be an image file, or an object with an 'image_url'.",
            code="invalid_value",
            param=REFERENCE,
        )
    if url.startswith("data:"):
        data, _ = decode_data_url(
            url, param=REFERENCE, max_bytes=MAX_IMAGE_BYTES, too_large_code="image_too_large"
        )
    else:
        data, _ = fetch_limited(
            url,
            param=REFERENCE,
            allow_local=settings.allow_local_urls,
            max_bytes=MAX_IMAGE_BYTES,
            too_large_code="image_too_large",
        )
    return prepare_reference_image(data, size)
