"""What every key-authenticated adapter holds the same way: its account's name, key and base URL,
one HTTP session, and the checks of its account options. The wire protocols differ; this does not.
"""

from __future__ import annotations

from collections.abc import Collection

import requests

from gateway.providers.port import Capabilities, PlainAsset, ProviderAccount
from gateway.providers.transport import pooled_session

DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds


class KeyedProvider:
    """The account part of an adapter; a subclass adds its protocol and sets `CAPABILITIES`."""

    KIND = ""
    DEFAULT_BASE_URL = ""
    CAPABILITIES = Capabilities()

    def __init__(
        self,
        account: ProviderAccount,
        *,
        session: requests.Session | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> None:
        if not account.api_key:
            raise ValueError(f"provider account {account.name!r} ({self.KIND}) needs an api key")
        self._name = account.name
        self._key: str = account.api_key
        self._base = (account.base_url or self.DEFAULT_BASE_URL).rstrip("/")
        self._options = account.options
        self._session = session or pooled_session()
        self._timeout = timeout

    @property
    def name(self) -> str:
        return self._name

    @property
    def capabilities(self) -> Capabilities:
        return self.CAPABILITIES

    def plain_asset(self, video_id: str, variant: str = "video") -> PlainAsset | None:
        """None: by default an asset is read with the account's key (see `open_asset`); adapters
        whose provider hands out key-less CDN links say where."""
        return None

    def close(self) -> None:
        self._session.close()

    def _option(self, name: str, allowed: Collection[str]) -> str | None:
        """An account option that must be one of `allowed` (case-insensitively); None when unset.
        A bad value stops the adapter from being built, naming the account and the option."""
        value = self._options.get(name)
        if value is not None and value.lower() not in allowed:
            raise ValueError(
                f"provider account {self._name!r}: option {name} must be one of {', '.join(sorted(allowed))}"
            )
        return None if value is None else value.lower()
