"""From a create or remix request's fields to a `Submission` (or a 4xx naming the field).

Validation here does no I/O, so it is answered before anything costly is done. What does I/O or
heavy work is kept apart, for the handler to run on the right pool at the right moment:
`check_urls` (DNS look-ups), `load_image` (an image URL's fetch) and `prepare_image`
(decoding and fitting), the last two only once the request holds its quota slot.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from api.forms import RequestFields
from gateway.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from gateway.idempotency import MAX_KEY_CHARS
from gateway.images import MAX_IMAGE_BYTES, ReferenceImage, prepare_reference_image, sniff_image_type
from gateway.jobs import Job
from gateway.settings import DEFAULT_PROVIDER, Settings
from gateway.submissions import Submission
from gateway.urls import check_public_url, decode_data_url, fetch_limited
from gateway.validation import VideoSpec, metadata_of, parse_video_spec, prompt_of, user_of

REFERENCE = "input_reference"
# Cut an image URL's whole fetch (connect, redirects, body) at this: a trickling server is cut.
IMAGE_FETCH_SECONDS = 10.0


@dataclass(frozen=True)
class ImageInput:
    """The reference image as the client sent it: uploaded bytes, or a URL (https or data:)."""

    uploaded: bytes | None = None
    url: str | None = None

    def digest(self) -> str:
        # Prefixed so an upload can never hash like a URL with the same text.
        raw = b"upload:" + self.uploaded if self.uploaded is not None else b"url:" + (self.url or "").encode()
        return hashlib.sha256(raw).hexdigest()

    @property
    def needs_fetch(self) -> bool:
        return self.url is not None and not self.url.startswith("data:")


@dataclass(frozen=True)
class Intake:
    submission: Submission
    image: ImageInput | None = None

    @property
    def slow(self) -> bool:
        """Whether accepting it takes outbound or heavy work (an image, a webhook host's look-up)."""
        return self.image is not None or self.submission.webhook_url is not None


def create_submission(fields: RequestFields, settings: Settings, idempotency_key: str | None) -> Intake:
    sends_image = REFERENCE in fields.files or fields.values.get(REFERENCE) is not None
    spec = parse_video_spec(fields.values, settings, image=sends_image)
    model = settings.catalog[spec.model]
    image = _image_input(fields)
    if image is not None and not model.image_input:
        # Checked before the image is fetched or fitted, and before any quota is taken.
        raise InvalidRequest(
            f"Model '{model.id}' does not take an input image; send no 'input_reference', "
            "or choose a model that takes one (GET /v1/models).",
            code="invalid_value",
            param=REFERENCE,
        )
    # The first of the model's routes that makes this video; the job may move on to the later
    # ones before a provider accepts it (gateway.reroute).
    routes = model.routes_for(spec.size, spec.seconds, image=image is not None, options=spec.options)
    if not routes:
        raise InvalidRequest(
            f"Model '{model.id}' makes {spec.size} at {spec.seconds} seconds"
            f"{' from an image' if image is not None else ''}"
            f"{' with ' + ', '.join(spec.options) if spec.options else ''} on none of its providers; "
            "choose another size, duration or options (GET /v1/models).",
            code="invalid_value",
            param="size",
        )
    submission = Submission(
        spec=spec,
        reference_digest=image.digest() if image is not None else None,
        webhook_url=_webhook_url(fields.values.get("webhook_url")),
        idempotency_key=_idempotency_key(idempotency_key),
        provider=routes[0].provider,
        provider_model=routes[0].provider_model,
    )
    return Intake(submission, image)


def remix_submission(
    fields: RequestFields, source: Job, settings: Settings, idempotency_key: str | None
) -> Intake:
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
    submission = Submission(
        spec=spec,
        remixed_from=source.id,
        webhook_url=_webhook_url(fields.values.get("webhook_url")),
        idempotency_key=_idempotency_key(idempotency_key),
        # Jobs from before providers ran on the default account, under the settings' deployment.
        provider=source.provider or DEFAULT_PROVIDER,
        provider_model=source.provider_model or settings.deployments.get(source.model, source.model),
    )
    return Intake(submission)


def check_urls(intake: Intake, settings: Settings) -> None:
    """Refuse a webhook or image URL that is or resolves to a non-public address (blocking: DNS).

    Before the quota is touched; the image URL's fetch checks its addresses again when it connects.
    """
    webhook_url = intake.submission.webhook_url
    if webhook_url is not None:
        check_public_url(webhook_url, param="webhook_url", allow_local=settings.allow_local_urls)
    if intake.image is not None and intake.image.needs_fetch:
        check_public_url(intake.image.url or "", param=REFERENCE, allow_local=settings.allow_local_urls)


def load_image(image: ImageInput, settings: Settings) -> bytes:
    """The image's bytes: as uploaded, decoded from a data: URL, or fetched (blocking, bounded)."""
    if image.uploaded is not None:
        return image.uploaded
    url = image.url or ""
    if url.startswith("data:"):
        data, _ = decode_data_url(
            url, param=REFERENCE, max_bytes=MAX_IMAGE_BYTES, too_large_code="image_too_large"
        )
        return data
    data, _ = fetch_limited(
        url,
        param=REFERENCE,
        allow_local=settings.allow_local_urls,
        max_bytes=MAX_IMAGE_BYTES,
        timeout=IMAGE_FETCH_SECONDS,
        too_large_code="image_too_large",
    )
    return data


def prepare_image(data: bytes, submission: Submission) -> ReferenceImage:
    """Check, decode and fit the image to the video's size (CPU and memory heavy)."""
    return prepare_reference_image(data, submission.spec.size)


def _image_input(fields: RequestFields) -> ImageInput | None:
    uploaded = fields.files.get(REFERENCE)
    if uploaded is not None:
        _precheck_upload(uploaded.content)
        return ImageInput(uploaded=uploaded.content)
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
    return ImageInput(url=url)


def _precheck_upload(content: bytes) -> None:
    """What an upload shows without decoding, refused before any quota is taken (decoding checks
    it all again)."""
    if len(content) > MAX_IMAGE_BYTES:
        raise PayloadTooLarge(
            f"'{REFERENCE}' is {len(content)} bytes; at most {MAX_IMAGE_BYTES} bytes (10 MiB) are accepted.",
            code="image_too_large",
            param=REFERENCE,
        )
    if sniff_image_type(content) is None:
        raise UnsupportedMediaType(
            f"'{REFERENCE}' must be a JPEG, PNG or WebP image.",
            code="unsupported_image_type",
            param=REFERENCE,
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


def _webhook_url(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 2048:
        raise InvalidRequest("'webhook_url' must be a URL string.", code="invalid_value", param="webhook_url")
    return value
