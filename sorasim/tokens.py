"""Managed-identity access tokens: random strings remembered with their audience and expiry."""

from __future__ import annotations

import enum
import secrets
import threading
from dataclasses import dataclass

COGNITIVE_SERVICES_RESOURCE = "https://cognitiveservices.azure.com"
"""The audience Azure OpenAI accepts (scope `https://cognitiveservices.azure.com/.default`)."""

FORGET_EXPIRED_AFTER_SECONDS = 3600.0
"""Expired tokens are kept this long so a late caller hears "expired" rather than "unknown"."""


class TokenCheck(enum.Enum):
    VALID = "valid"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    WRONG_AUDIENCE = "wrong_audience"


@dataclass(frozen=True)
class IssuedToken:
    value: str
    resource: str
    expires_on: int
    """Unix seconds; the token is valid while now < expires_on."""


def normalize_resource(resource: str) -> str:
    return resource.strip().rstrip("/").lower()


class TokenIssuer:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, IssuedToken] = {}

    def issue(self, resource: str, ttl_seconds: float, now: float) -> IssuedToken:
        # Like Entra ID, any resource gets a token; only its audience decides where it works.
        token = IssuedToken(secrets.token_urlsafe(48), resource, int(now + ttl_seconds))
        with self._lock:
            self._forget_long_expired(now)
            self._tokens[token.value] = token
        return token

    def check(self, value: str, now: float) -> TokenCheck:
        with self._lock:
            token = self._tokens.get(value)
        if token is None:
            return TokenCheck.UNKNOWN
        if now >= token.expires_on:
            return TokenCheck.EXPIRED
        if normalize_resource(token.resource) != COGNITIVE_SERVICES_RESOURCE:
            return TokenCheck.WRONG_AUDIENCE
        return TokenCheck.VALID

    def _forget_long_expired(self, now: float) -> None:
        cutoff = now - FORGET_EXPIRED_AFTER_SECONDS
        for value in [value for value, token in self._tokens.items() if token.expires_on < cutoff]:
            del self._tokens[value]
