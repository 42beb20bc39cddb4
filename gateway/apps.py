"""Apps (the gateway's callers), their plans and their API keys, in Table Storage.

Keys are 256 random bits, shown once, stored only as SHA-256 hashes: with that much entropy a
slow hash adds nothing, and a hash lets a key be found with one point read. The key's row also
carries what a request needs of its app (plan, name, webhook secret), so authenticating is that
one read; plan changes write both rows, and a rotation replaces the key row.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import math
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from gateway import azure_sdk as sdk
from gateway.errors import Conflict, InvalidRequest
from gateway.tables import APP_KEYS_TABLE, APPS_TABLE, Tables

if TYPE_CHECKING:
    from azure.data.tables import TableEntity

PLANS = ("free", "pro", "business")
KEY_PREFIX = "sgw_"
_APP_PARTITION = "app"
_KEY_PARTITION = "key"
_LISTED_COLUMNS = ("RowKey", "name", "plan", "created_at")
ROTATION_QUIET_SECONDS = 10


@dataclass(frozen=True)
class App:
    id: str
    name: str
    plan: str
    created_at: int
    key_hash: str
    webhook_secret: str
    # The app's own budget fields as JSON (gateway.budgets.parse_budget), replacing its plan's;
    # None: its plan's budget.
    budget: str | None = None


@dataclass(frozen=True)
class AppInfo:
    """What a listing shows of an app: no key hash, no webhook secret (they are never read)."""

    id: str
    name: str
    plan: str
    created_at: int


@dataclass(frozen=True)
class AppPage:
    apps: list[AppInfo]
    has_more: bool


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


class ConcurrentUpdate(Conflict):
    """Another change to the same app won the race; the caller may try again."""

    code = "concurrent_update"


class AppStore:
    def __init__(self, tables: Tables, *, clock: Callable[[], float] = time.time) -> None:
        self._apps = tables.get(APPS_TABLE)
        self._keys = tables.get(APP_KEYS_TABLE)
        self._clock = clock

    def create_app(
        self, name: str, plan: str, *, app_id: str | None = None, api_key: str | None = None
    ) -> NewApp:
        api_key = api_key or new_api_key()
        app = App(
            id=app_id or "app_" + uuid.uuid4().hex,
            name=name,
            plan=plan,
            created_at=int(self._clock()),
            key_hash=hash_key(api_key),
            webhook_secret=new_webhook_secret(),
        )
        # The key row first: an app row without its key row would be unusable but harmless,
        # the reverse would let a key reach a missing app.
        self._keys.create_entity(_key_entity(app, version=1))
        self._apps.create_entity({**_app_entity(app), "version": 1})
        return NewApp(app=app, api_key=api_key)

    def ensure_app(self, app_id: str, name: str, plan: str, api_key: str) -> App:
        """Create the app if missing and make `api_key` its key (development seeding)."""
        existing = self.get_app(app_id)
        if existing is None:
            try:
                return self.create_app(name, plan, app_id=app_id, api_key=api_key).app
            except sdk.ResourceExistsError:
                existing = self.get_app(app_id)
                assert existing is not None
        if not hmac.compare_digest(existing.key_hash, hash_key(api_key)):
            existing = self.replace_key(existing.id, api_key)
        return existing

    def get_app(self, app_id: str) -> App | None:
        try:
            entity = self._apps.get_entity(_APP_PARTITION, app_id)
        except sdk.ResourceNotFoundError:
            return None
        return _app_from_entity(entity)

    def list_apps(self, *, limit: int, after: str | None, newest_first: bool) -> AppPage:
        """One page of apps by creation (`created_at`, then id), and whether more follow.

        `after` is the id of the app the page starts after; an id of no app raises
        InvalidRequest (param `after`): an app id has no place in the order of its own.

        Cost: one query of the apps partition, reading only the listed columns (never the key
        hash or the webhook secret), then a sort in memory. Table Storage orders rows by id, not
        by creation, so every page reads the whole partition: about 1,000 rows per round trip
        and ~100 bytes a row, a few round trips and well under a megabyte for the few thousand
        apps expected. Past tens of thousands, a creation-ordered index row would be the fix.
        """
        rows = self._apps.query_entities(
            "PartitionKey eq @partition",
            parameters={"partition": _APP_PARTITION},
            select=list(_LISTED_COLUMNS),
        )
        apps = sorted(
            (_info_from_entity(row) for row in rows),
            key=lambda app: (app.created_at, app.id),
            reverse=newest_first,
        )
        start = 0
        if after is not None:
            start = next((i + 1 for i, app in enumerate(apps) if app.id == after), -1)
            if start < 0:
                raise InvalidRequest(f"Invalid 'after': no app has the id {after!r}.", param="after")
        page = apps[start : start + limit]
        return AppPage(apps=page, has_more=start + limit < len(apps))

    def authenticate(self, api_key: str) -> App | None:
        """The app owning `api_key`, or None: one point read of the key's row.

        The key row carries what a request needs of its app (written with every plan change and
        replaced by every rotation), so a change applies to the very next request without the
        app row being read. Key rows written before that carry only the app id: they are checked
        against the app row, as before, and brought up to date.
        """
        key_hash = hash_key(api_key)
        try:
            key_row = self._keys.get_entity(_KEY_PARTITION, key_hash)
        except sdk.ResourceNotFoundError:
            return None
        if "plan" in key_row:
            return _app_from_key_row(key_row)
        return self._authenticate_old_key_row(key_row)

    def set_plan(self, app_id: str, plan: str) -> App | None:
        """Change the app's plan; its key row follows before this returns."""
        return self._set(app_id, plan=plan)

    def set_budget(self, app_id: str, budget: str | None) -> App | None:
        """Give the app its own budget (JSON budget fields) or, with None, its plan's again; its
        key row follows before this returns, so the very next request is held to it."""
        return self._set(app_id, budget=budget)

    def _set(self, app_id: str, **changes: str | None) -> App | None:
        while True:
            try:
                entity = self._apps.get_entity(_APP_PARTITION, app_id)
            except sdk.ResourceNotFoundError:
                return None
            for name, value in changes.items():
                if value is None:
                    entity.pop(name, None)
                else:
                    entity[name] = value
            version = _version(entity) + 1
            entity["version"] = version
            try:
                self._apps.update_entity(  # replaced whole: a budget set back to None is removed
                    entity,
                    mode=sdk.UpdateMode.REPLACE,
                    etag=entity.metadata["etag"],
                    match_condition=sdk.MatchConditions.IfNotModified,
                )
            except (sdk.ResourceModifiedError, sdk.ResourceNotFoundError):
                continue  # a rotation or another change came first: apply ours on top of it
            app = _app_from_entity(entity)
            self._sync_key_row(app, version)
            return app

    def replace_key(self, app_id: str, api_key: str) -> App:
        """Give the app a new key; the old one stops working with this call. Returns the app.

        Raises ConcurrentUpdate when another rotation of the same app wins the race: of racing
        rotations exactly one hands out a key, and that key works.
        """
        return self._replace_key(self._apps.get_entity(_APP_PARTITION, app_id), api_key)

    def _replace_key(self, entity: TableEntity, api_key: str) -> App:
        """`replace_key` conditional on the app row as read in `entity`."""
        app_id = str(entity["RowKey"])
        new_hash = hash_key(api_key)
        old_hash = str(entity["key_hash"])
        # A rotation interrupted after its app row write may have left its old key's row behind.
        self._delete_key_row(str(entity.get("retired_key_hash") or ""))
        while True:
            version = _version(entity) + 1
            rotated = replace(_app_from_entity(entity), key_hash=new_hash)
            # The new key's row first, so the key works the moment the app row names it.
            self._keys.upsert_entity(_key_entity(rotated, version=version), mode=sdk.UpdateMode.REPLACE)
            entity.update(
                {
                    "key_hash": new_hash,
                    "retired_key_hash": old_hash,
                    "version": version,
                    "rotated_at": self._clock(),
                }
            )
            try:
                self._apps.update_entity(
                    entity, etag=entity.metadata["etag"], match_condition=sdk.MatchConditions.IfNotModified
                )
                break
            except sdk.ResourceModifiedError:
                entity = self._apps.get_entity(_APP_PARTITION, app_id)
                if str(entity["key_hash"]) != old_hash:  # another rotation won
                    self._delete_key_row(new_hash)
                    raise ConcurrentUpdate(
                        "Another key rotation for this app happened at the same time and won; "
                        "its key is the app's key now. Retry if you still need a new one.",
                        headers={"Retry-After": "1"},
                    ) from None
                # A plan change came first: rotate again on top of it (its plan in the key row).
        self._delete_key_row(old_hash)
        return _app_from_entity(entity)

    def rotate_key(self, app_id: str) -> NewApp:
        """A new random key for the app, refused with ConcurrentUpdate within
        ROTATION_QUIET_SECONDS of the previous rotation: rotations that close together are
        one intent sent twice, and each would silently invalidate the key the other handed out."""
        entity = self._apps.get_entity(_APP_PARTITION, app_id)
        rotated_at = float(entity.get("rotated_at") or 0.0)
        wait = math.ceil(rotated_at + ROTATION_QUIET_SECONDS - self._clock())
        if wait > 0:
            raise ConcurrentUpdate(
                f"This app's key was rotated less than {ROTATION_QUIET_SECONDS} seconds ago, by another "
                f"request; its key is the app's key now. Retry in {wait} seconds if you still need a new one.",
                headers={"Retry-After": str(wait)},
            )
        api_key = new_api_key()
        # Conditional on the very read that passed the quiet check: a rotation that read the
        # row before another's write cannot win after it.
        return NewApp(app=self._replace_key(entity, api_key), api_key=api_key)

    def _authenticate_old_key_row(self, key_row: TableEntity) -> App | None:
        key_hash = str(key_row["RowKey"])
        try:
            entity = self._apps.get_entity(_APP_PARTITION, str(key_row["app_id"]))
        except sdk.ResourceNotFoundError:
            return None
        app = _app_from_entity(entity)
        # The app row is the source of truth for such rows: a key row left behind by an
        # interrupted rotation of the old code must not keep working.
        if not hmac.compare_digest(app.key_hash, key_hash):
            return None
        with contextlib.suppress(sdk.ResourceModifiedError, sdk.ResourceNotFoundError):
            # If unchanged since read: a plan change or rotation meanwhile wrote it (or deleted it).
            self._keys.update_entity(
                _key_entity(app, version=_version(entity)),
                mode=sdk.UpdateMode.REPLACE,
                etag=key_row.metadata["etag"],
                match_condition=sdk.MatchConditions.IfNotModified,
            )
        return app

    def _sync_key_row(self, app: App, version: int) -> None:
        """Bring the key row up to the app row's `version`, unless a later write already did."""
        while True:
            try:
                key_row = self._keys.get_entity(_KEY_PARTITION, app.key_hash)
            except sdk.ResourceNotFoundError:
                return  # rotated away: the rotation wrote its new row from the app row we wrote
            if int(key_row.get("app_version") or 0) >= version:
                return
            try:
                self._keys.update_entity(
                    _key_entity(app, version=version),
                    mode=sdk.UpdateMode.REPLACE,
                    etag=key_row.metadata["etag"],
                    match_condition=sdk.MatchConditions.IfNotModified,
                )
                return
            except sdk.ResourceModifiedError:
                continue
            except sdk.ResourceNotFoundError:
                return

    def _delete_key_row(self, key_hash: str) -> None:
        if key_hash:  # delete_entity ignores a missing row (404) itself
            self._keys.delete_entity(_KEY_PARTITION, key_hash)


def _app_entity(app: App) -> dict[str, object]:
    return {
        "PartitionKey": _APP_PARTITION,
        "RowKey": app.id,
        "name": app.name,
        "plan": app.plan,
        "created_at": app.created_at,
        "key_hash": app.key_hash,
        "webhook_secret": app.webhook_secret,
        **({"budget": app.budget} if app.budget else {}),
    }


def _key_entity(app: App, *, version: int) -> dict[str, object]:
    """The key's row: what authentication needs of the app, as of the app row's `version`."""
    return {
        "PartitionKey": _KEY_PARTITION,
        "RowKey": app.key_hash,
        "app_id": app.id,
        "name": app.name,
        "plan": app.plan,
        "created_at": app.created_at,
        "webhook_secret": app.webhook_secret,
        "app_version": version,
        **({"budget": app.budget} if app.budget else {}),
    }


def _app_from_key_row(row: Mapping[str, object]) -> App:
    return App(
        id=str(row["app_id"]),
        name=str(row["name"]),
        plan=str(row["plan"]),
        created_at=int(row["created_at"]),  # type: ignore[call-overload]
        key_hash=str(row["RowKey"]),
        webhook_secret=str(row["webhook_secret"]),
        budget=str(row["budget"]) if row.get("budget") else None,
    )


def _version(entity: Mapping[str, object]) -> int:
    """The app row's write count (0 for rows from before it was kept)."""
    return int(str(entity.get("version") or 0))


def _app_from_entity(entity: Mapping[str, object]) -> App:
    return App(
        id=str(entity["RowKey"]),
        name=str(entity["name"]),
        plan=str(entity["plan"]),
        created_at=int(entity["created_at"]),  # type: ignore[call-overload]
        key_hash=str(entity["key_hash"]),
        webhook_secret=str(entity["webhook_secret"]),
        budget=str(entity["budget"]) if entity.get("budget") else None,
    )


def _info_from_entity(entity: Mapping[str, object]) -> AppInfo:
    return AppInfo(
        id=str(entity["RowKey"]),
        name=str(entity["name"]),
        plan=str(entity["plan"]),
        created_at=int(entity["created_at"]),  # type: ignore[call-overload]
    )
