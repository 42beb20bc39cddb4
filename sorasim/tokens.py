"""Managed-identity access tokens: random strings remembered with their audience and expiry.

A token for Azure Storage (`https://storage.azure.com`) is instead an unsigned JWT (alg "none")
with the claims Azurite's `--oauth basic` checks (it decodes the token without verifying a
signature; it wants iat, nbf and exp with nbf <= now <= exp, an iss starting with
`https://sts.windows.net/`, aud `https://storage.azure.com`) and the oid and tid it puts into a
user delegation key: node_modules/azurite/dist/src/blob/authentication/BlobTokenAuthenticator.js
and dist/src/blob/handlers/ServiceHandler.js (getUserDelegationKey). Real Storage would refuse
it; nothing but Azurite is meant to see it.
"""

from __future__ import annotations

import base64
import enum
import json
import secrets
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

COGNITIVE_SERVICES_RESOURCE = "https://cognitiveservices.azure.com"
"""The audience Azure OpenAI accepts (scope `https://cognitiveservices.azure.com/.default`)."""

STORAGE_RESOURCE = "https://storage.azure.com"
"""The audience of Azure Storage (scope `https://storage.azure.com/.default`)."""

TENANT_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "sorasim/tenant"))
PRINCIPAL_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "sorasim/managed-identity/principal"))
"""The managed identity's object id (oid): a user delegation key names it (skoid)."""

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
        expires_on = int(now + ttl_seconds)
        if normalize_resource(resource) == STORAGE_RESOURCE:
            value = storage_jwt(resource, int(now), expires_on)
        else:
            value = secrets.token_urlsafe(48)
        token = IssuedToken(value, resource, expires_on)
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


def storage_jwt(audience: str, issued_at: int, expires_on: int) -> str:
    """An unsigned JWT for Azurite's OAuth (see the module docstring), unique per call (jti)."""
    claims = {
        "aud": audience.rstrip("/"),
        "iss": f"https://sts.windows.net/{TENANT_ID}/",
        "iat": issued_at,
        "nbf": issued_at,
        "exp": expires_on,
        "oid": PRINCIPAL_ID,
        "tid": TENANT_ID,
        "sub": PRINCIPAL_ID,
        "jti": secrets.token_urlsafe(16),
    }
    header = {"alg": "none", "typ": "JWT"}
    return f"{_base64url(header)}.{_base64url(claims)}."


def _base64url(part: Mapping[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part, separators=(",", ":")).encode()).rstrip(b"=").decode()
