"""Adapter for the Azure OpenAI v1 videos API (`<endpoint>/openai/v1/videos`).

Authenticates with Microsoft Entra ID (the process's DefaultAzureCredential, a managed identity
on Azure) unless the account has an api-key, which Azure takes in the `api-key` header.
"""

from __future__ import annotations

from gateway.providers.openai_wire import AuthHeaders, OpenAIVideosWire
from gateway.providers.port import Capabilities, ProviderAccount, VideoProvider

COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"
CAPABILITIES = Capabilities(image_input=True, remix=True, delete=True, find_recent=True, thumbnail=True)


def build(account: ProviderAccount) -> VideoProvider:
    return OpenAIVideosWire(
        account.name, account.base_url.rstrip("/") + "/openai/v1", _auth(account), capabilities=CAPABILITIES
    )


def _auth(account: ProviderAccount) -> AuthHeaders:
    key = account.api_key
    if key:
        return lambda: {"api-key": key}
    # The process's one credential (imported here: gateway.clients builds adapters). It caches
    # the token and refreshes it before it expires.
    from gateway.clients import get_credential

    credential = get_credential()
    return lambda: {"Authorization": f"Bearer {credential.get_token(COGNITIVE_SERVICES_SCOPE).token}"}
