"""Adapter for any service speaking the OpenAI Videos API at `<base_url>/videos` with
`Authorization: Bearer <key>` (OpenAI itself, or a compatible proxy).

What such a service supports beyond the basics varies, so capabilities default to the full
OpenAI set and an account may turn them off in its `options`, e.g. {"remix": "false"}.
"""

from __future__ import annotations

from dataclasses import fields

from gateway.errors import SettingsError
from gateway.providers.openai_wire import OpenAIVideosWire
from gateway.providers.port import Capabilities, ProviderAccount, VideoProvider

_FLAGS = {"true": True, "false": False}


def build(account: ProviderAccount) -> VideoProvider:
    if not account.api_key:
        raise SettingsError(f"provider {account.name!r} (openai-compatible) needs a key_setting")
    key = account.api_key
    return OpenAIVideosWire(
        account.name,
        account.base_url,
        lambda: {"Authorization": f"Bearer {key}"},
        capabilities=capabilities_of(account),
    )


def capabilities_of(account: ProviderAccount) -> Capabilities:
    """OpenAI's full set, less whatever the account's options turn off."""
    values: dict[str, bool] = {}
    for flag in fields(Capabilities):
        raw = account.options.get(flag.name, "true").strip().lower()
        if raw not in _FLAGS:
            raise SettingsError(f"provider {account.name!r}: option {flag.name} must be true or false")
        values[flag.name] = _FLAGS[raw]
    return Capabilities(**values)
