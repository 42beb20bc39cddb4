"""Which adapter serves which kind of provider account.

Adapter modules are imported by name on first use, so a kind whose module is not installed
fails only the accounts (and the jobs) that use it, and adding a provider is one new module
plus its line here.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import cast

from gateway.errors import UpstreamRejectedError
from gateway.providers.port import ProviderAccount, ProviderFactory, VideoProvider

ADAPTER_MODULES = {
    "azure-openai": "gateway.providers.azure_openai",
    "openai-compatible": "gateway.providers.openai_compatible",
    "aimlapi": "gateway.providers.aimlapi",
    "geminigen": "gateway.providers.geminigen",
    "gemini": "gateway.providers.gemini",
    "fal": "gateway.providers.fal",
}
KINDS = tuple(ADAPTER_MODULES)


class ProviderUnavailable(UpstreamRejectedError):
    """The account's adapter is not installed: a permanent answer for the jobs that need it."""


def factory(kind: str) -> ProviderFactory:
    return cast(ProviderFactory, _adapter(kind).build)


def video_options(account: ProviderAccount, provider_model: str) -> frozenset[str] | None:
    """The per-request options (gateway.video_options) the account's adapter sends for that
    model: its module's `video_options(account, provider_model)`, none without one; None when
    the adapter is not installed (its jobs fail on their own)."""
    try:
        module = _adapter(account.kind)
    except ProviderUnavailable:
        return None
    carried = getattr(module, "video_options", None)
    return frozenset() if carried is None else frozenset(carried(account, provider_model))


def _adapter(kind: str) -> ModuleType:
    module_name = ADAPTER_MODULES[kind]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        raise ProviderUnavailable(
            f"the {kind} adapter is not installed", code="provider_unavailable", status=None
        ) from error


def build_provider(account: ProviderAccount) -> VideoProvider:
    return factory(account.kind)(account)
