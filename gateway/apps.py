"""Apps (the gateway's callers), their plans and their API keys, in Table Storage.

Keys are 256 random bits, shown once, stored only as SHA-256 hashes: with that much entropy a
slow hash adds nothing, and a hash lets a key be found with one point read.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

from gateway.tables import APP_KEYS_TABLE, APPS_TABLE, Tables

PLANS = ("free", "pro", "business")
KEY_PREFIX = "sgw_"
_APP_PARTITION = "app"
_KEY_PARTITION = "key"


@dataclass(frozen=True)
class App:
    id: str
    name: str
    plan: str
    created_at: int
    key_hash: str
    webhook_secret: str


@dataclass(frozen=True)
class NewApp:
    """An app as created: the only time its secrets are shown."""

    app: App
    api_key: str


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


class AppStore:
    def __init__(self, tables: Tables) -> None:
        self._apps = tables.get(APPS_TABLE)
        self._keys = tables.get(APP_KEYS_TABLE)

    def create_app(
        self, name: str, plan: str, *, app_id: str | None = None, api_key: str | None = None
    ) -> NewApp:
        api_key = api_key or new_api_key()
        app = App(
            id=app_id or "app_" + uuid.uuid4().hex,
            name=name,
            plan=plan,
            created_at=int(time.time()),
            key_hash=hash_key(api_key),
            webhook_secret=new_webhook_secret(),
        )
        # The key row first: an app row without its key row would be unusable but harmless,
        # the reverse would let a key reach a missing app.
        self._keys.create_entity({"PartitionKey": _KEY_PARTITION, "RowKey": app.key_hash, "app_id": app.id})
        self._apps.create_entity(_app_entity(app))
        return NewApp(app=app, api_key=api_key)

    def ensure_app(self, app_id: str, name: str, plan: str, api_key: str) -> App:
        """Create the app if missing and make `api_key` its key (development seeding)."""
        existing = self.get_app(app_id)
        if existing is None:
            try:
                return self.create_app(name, plan, app_id=app_id, api_key=api_key).app
            except ResourceExistsError:
                existing = self.get_app(app_id)
                assert existing is not None
        if not hmac.compare_digest(existing.key_hash, hash_key(api_key)):
            existing = self.replace_key(existing.id, api_key)
        return existing

    def get_app(self, app_id: str) -> App | None:
        try:
            entity = self._apps.get_entity(_APP_PARTITION, app_id)
        except ResourceNotFoundError:
            return None
        return _app_from_entity(entity)

    def authenticate(self, api_key: str) -> App | None:
        """The app owning `api_key`, or None. Reads storage every time so rotation is immediate."""
        key_hash = hash_key(api_key)
        try:
            key_row = self._keys.get_entity(_KEY_PARTITION, key_hash)
        except ResourceNotFoundError:
            return None
        app = self.get_app(str(key_row["app_id"]))
        # The app row is the source of truth: a key row left behind by an interrupted
        # rotation must not keep working.
        if app is None or not hmac.compare_digest(app.key_hash, key_hash):
            return None
        return app

    def set_plan(self, app_id: str, plan: str) -> App | None:
        app = self.get_app(app_id)
        if app is None:
            return None
        self._apps.update_entity({"PartitionKey": _APP_PARTITION, "RowKey": app_id, "plan": plan})
        return self.get_app(app_id)

    def replace_key(self, app_id: str, api_key: str) -> App:
        """Give the app a new key; the old one stops working with this call. Returns the app."""
        entity = self._apps.get_entity(_APP_PARTITION, app_id)
        old_hash = str(entity["key_hash"])
        new_hash = hash_key(api_key)
        self._keys.upsert_entity({"PartitionKey": _KEY_PARTITION, "RowKey": new_hash, "app_id": app_id})
        entity["key_hash"] = new_hash
        self._apps.update_entity(
            entity, etag=entity.metadata["etag"], match_condition=MatchConditions.IfNotModified
        )
        with contextlib.suppress(ResourceNotFoundError):
            self._keys.delete_entity(_KEY_PARTITION, old_hash)
        return _app_from_entity(self._apps.get_entity(_APP_PARTITION, app_id))

    def rotate_key(self, app_id: str) -> NewApp:
        api_key = new_api_key()
        return NewApp(app=self.replace_key(app_id, api_key), api_key=api_key)


def _app_entity(app: App) -> dict[str, object]:
    return {
        "PartitionKey": _APP_PARTITION,
        "RowKey": app.id,
        "name": app.name,
        "plan": app.plan,
        "created_at": app.created_at,
        "key_hash": app.key_hash,
        "webhook_secret": app.webhook_secret,
    }


def _app_from_entity(entity: dict[str, object]) -> App:
    return App(
        id=str(entity["RowKey"]),
        name=str(entity["name"]),
        plan=str(entity["plan"]),
        created_at=int(entity["created_at"]),  # type: ignore[call-overload]
        key_hash=str(entity["key_hash"]),
        webhook_secret=str(entity["webhook_secret"]),
    )
