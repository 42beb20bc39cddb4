"""The registry finds adapters by kind, importing each on first use; a missing one fails only its jobs."""

from __future__ import annotations

import pytest

from gateway.errors import UpstreamRejectedError
from gateway.messages import PROVIDER_UNAVAILABLE, failure_message
from gateway.providers import registry
from gateway.providers.port import ProviderAccount


def test_every_kind_builds_an_adapter_named_after_its_account() -> None:
    for kind in registry.KINDS:
        account = ProviderAccount(name=f"my-{kind}", kind=kind, base_url="http://127.0.0.1:9", api_key="k")
        provider = registry.build_provider(account)
        try:
            assert provider.name == f"my-{kind}"
        finally:
            provider.close()


def test_an_adapter_module_that_is_not_installed_is_a_permanent_refusal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(registry.ADAPTER_MODULES, "aimlapi", "gateway.providers.not_installed")
    account = ProviderAccount(name="aimlapi", kind="aimlapi", base_url="http://127.0.0.1:9", api_key="k")
    with pytest.raises(UpstreamRejectedError) as refused:
        registry.build_provider(account)
    assert refused.value.code == PROVIDER_UNAVAILABLE
    assert "Please contact the operator" in failure_message(refused.value.code)
