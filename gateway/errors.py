"""One small error hierarchy; `api.http.error_response` is the one place mapping it to HTTP."""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class SettingsError(GatewayError):
    """A required setting is missing or malformed (raised at start-up, never per request)."""


class ApiError(GatewayError):
    """An error answered to the client in the OpenAI error shape."""

    status: int = 400
    type: str = "invalid_request_error"
    code: str = "invalid_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        self.headers = headers or {}
        self.extra = extra or {}


class InvalidRequest(ApiError):
    status = 400
    code = "invalid_value"


class Unauthorized(ApiError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(ApiError):
    status = 403
    type = "permission_error"
    code = "plan_not_allowed"


class NotFound(ApiError):
    status = 404
    type = "not_found_error"
    code = "not_found"


class Conflict(ApiError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ApiError):
    status = 415
    code = "unsupported_media_type"


class RateLimited(ApiError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class BudgetExceeded(RateLimited):
    """The app's money budget for a window cannot take this job's estimated cost. 429 with the
    type OpenAI's API gives an exhausted quota (`insufficient_quota`), so clients that already
    back off on 429 and read Retry-After need nothing new (see docs/api.md)."""

    type = "insufficient_quota"
    code = "budget_exceeded"


class ServiceUnavailable(ApiError):
    status = 503
    type = "server_error"
    code = "service_unavailable"


class StorageUnavailable(ServiceUnavailable):
    """Table or Blob Storage did not answer in time, refused the connection or answered 5xx after
    the client's retries (raised at the storage seam, gateway.tables.StorageOutagePolicy)."""

    code = "storage_unavailable"
    # Long enough for a storage blip or failover to pass, short enough that a client polling
    # on it notices the recovery quickly.
    RETRY_AFTER_SECONDS = 5

    def __init__(
        self, message: str = "Storage is unavailable; try again shortly.", *, code: str | None = None
    ) -> None:
        super().__init__(message, code=code, headers={"Retry-After": str(self.RETRY_AFTER_SECONDS)})


class UpstreamError(GatewayError):
    """The video provider did not do what was asked."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class UpstreamTransientError(UpstreamError):
    """Worth retrying: throttling, 5xx, timeouts, dropped connections."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class UpstreamThrottled(UpstreamTransientError):
    """429: not a failure. The caller waits `retry_after` and asks again, without limit."""


class UpstreamRejectedError(UpstreamError):
    """Permanent: the upstream refused the request (content policy, bad input). Carries its code."""

    def __init__(self, message: str, *, code: str, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.code = code


class UpstreamAmbiguousError(UpstreamError):
    """A create that may have reached the provider (the answer was lost) on a provider that can
    neither list its jobs nor take an idempotency key. Retrying could make a second upstream job,
    so the job fails instead, with its slot given back (see gateway.creation)."""
