"""App records and keys, against Azurite."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest

from gateway.apps import (
    KEY_PREFIX,
    PLANS,
    ROTATION_QUIET_SECONDS,
    AppInfo,
    AppStore,
    ConcurrentUpdate,
    hash_key,
)
from gateway.errors import InvalidRequest
from gateway.tables import APP_KEYS_TABLE, APPS_TABLE, Tables

if TYPE_CHECKING:
    from azure.data.tables import TableClient


def test_created_key_authenticates_and_only_its_hash_is_stored(tables: Tables) -> None:
    store = AppStore(tables)
    created = store.create_app("Acme", "pro")

    assert created.api_key.startswith(KEY_PREFIX)
    assert len(created.api_key) - len(KEY_PREFIX) >= 43  # 32 random bytes, url-safe base64
    assert store.authenticate(created.api_key) == created.app
    stored = [dict(row) for name in (APPS_TABLE, APP_KEYS_TABLE) for row in tables.get(name).list_entities()]
    assert all(created.api_key not in str(value) for row in stored for value in row.values())
    assert any(row.get("RowKey") == hash_key(created.api_key) for row in stored)


def test_unknown_and_empty_keys_do_not_authenticate(tables: Tables) -> None:
    store = AppStore(tables)
    store.create_app("Acme", "pro")
    assert store.authenticate("sgw_not-a-key") is None
    assert store.authenticate("") is None


def test_rotation_stops_the_old_key_at_once(tables: Tables) -> None:
    store = AppStore(tables)
    created = store.create_app("Acme", "pro")

    rotated = store.rotate_key(created.app.id)

    assert rotated.api_key != created.api_key
    assert store.authenticate(created.api_key) is None
    authenticated = store.authenticate(rotated.api_key)
    assert authenticated is not None
    assert authenticated.id == created.app.id


def test_a_key_row_left_behind_by_an_interrupted_rotation_is_refused(tables: Tables) -> None:
    store = AppStore(tables)
    created = store.create_app("Acme", "pro")
    store.rotate_key(created.app.id)
    # Simulate a crash between "new key written" and "old key row deleted".
    tables.get(APP_KEYS_TABLE).upsert_entity(
        {"PartitionKey": "key", "RowKey": hash_key(created.api_key), "app_id": created.app.id}
    )
    assert store.authenticate(created.api_key) is None


def test_plan_change_is_read_on_the_next_lookup(tables: Tables) -> None:
    store = AppStore(tables)
    created = store.create_app("Acme", "free")
    store.set_plan(created.app.id, "business")
    app = store.authenticate(created.api_key)
    assert app is not None
    assert app.plan == "business"


def test_ensure_app_is_idempotent_and_adopts_the_given_key(tables: Tables) -> None:
    store = AppStore(tables)
    first = store.ensure_app("app_dev", "Dev", "pro", "sgw_first_key_" + "a" * 30)
    again = store.ensure_app("app_dev", "Dev", "pro", "sgw_first_key_" + "a" * 30)
    assert first == again
    store.ensure_app("app_dev", "Dev", "pro", "sgw_second_key_" + "b" * 30)
    assert store.authenticate("sgw_first_key_" + "a" * 30) is None
    assert store.authenticate("sgw_second_key_" + "b" * 30) is not None


def test_authentication_needs_only_the_key_row(tables: Tables) -> None:
    store = AppStore(tables)
    created = store.create_app("Acme", "pro")
    store.set_plan(created.app.id, "business")
    # Without the app row, the key row alone still says who is calling and on which plan.
    tables.get(APPS_TABLE).delete_entity("app", created.app.id)
    app = store.authenticate(created.api_key)
    assert app is not None
    assert (app.id, app.plan, app.webhook_secret) == (created.app.id, "business", created.app.webhook_secret)


def test_key_and_app_rows_written_by_the_old_code_still_work_and_are_upgraded(tables: Tables) -> None:
    api_key = "sgw_old_code_key_" + "o" * 30
    _old_code_rows(tables, api_key)
    store = AppStore(tables)

    app = store.authenticate(api_key)

    assert app is not None
    assert (app.id, app.plan, app.webhook_secret) == ("app_old", "pro", "whsec_old")
    assert tables.get(APP_KEYS_TABLE).get_entity("key", hash_key(api_key))["plan"] == "pro"
    updated = store.set_plan("app_old", "business")
    assert updated is not None
    again = store.authenticate(api_key)
    assert again is not None
    assert again.plan == "business"
    rotated = store.rotate_key("app_old")
    assert store.authenticate(api_key) is None
    assert store.authenticate(rotated.api_key) is not None


def test_of_racing_rotations_exactly_one_hands_out_a_key_and_it_works(tables: Tables) -> None:
    store = AppStore(tables)
    created = store.create_app("Acme", "pro")

    def rotate(_: int) -> str | None:
        try:
            return store.rotate_key(created.app.id).api_key
        except ConcurrentUpdate:
            return None

    with ThreadPoolExecutor(max_workers=10) as pool:
        keys = [key for key in pool.map(rotate, range(10)) if key is not None]

    assert len(keys) == 1
    assert store.authenticate(keys[0]) is not None
    assert store.authenticate(created.api_key) is None
    assert [row["RowKey"] for row in tables.get(APP_KEYS_TABLE).list_entities()] == [hash_key(keys[0])]


def test_a_rotation_that_loses_the_app_row_answers_conflict(tables: Tables) -> None:
    """Two rotations that both passed the quiet-period check: the later write must not win."""
    store = AppStore(tables)
    created = store.create_app("Acme", "pro")
    first_read = tables.get(APPS_TABLE).get_entity("app", created.app.id)
    winner = store.replace_key(created.app.id, "sgw_winner_" + "w" * 30)
    assert winner.key_hash == hash_key("sgw_winner_" + "w" * 30)

    apps = tables.get(APPS_TABLE)
    real_get = apps.get_entity
    reads = iter([first_read])
    apps.get_entity = lambda *a, **k: next(reads, None) or real_get(*a, **k)  # type: ignore[method-assign]
    with pytest.raises(ConcurrentUpdate) as refused:
        store.replace_key(created.app.id, "sgw_loser_" + "l" * 30)
    apps.get_entity = real_get  # type: ignore[method-assign]

    assert refused.value.message == (
        "Another key rotation for this app happened at the same time and won; "
        "its key is the app's key now. Retry if you still need a new one."
    )
    assert refused.value.headers == {"Retry-After": "1"}

    assert store.authenticate("sgw_loser_" + "l" * 30) is None
    assert store.authenticate("sgw_winner_" + "w" * 30) is not None


def test_a_second_rotation_within_the_quiet_period_is_refused_then_allowed(tables: Tables) -> None:
    now = [1_800_000_000.0]
    store = AppStore(tables, clock=lambda: now[0])
    created = store.create_app("Acme", "pro")
    first = store.rotate_key(created.app.id)
    now[0] += ROTATION_QUIET_SECONDS - 1
    with pytest.raises(ConcurrentUpdate) as refused:
        store.rotate_key(created.app.id)
    assert refused.value.headers == {"Retry-After": "1"}
    assert refused.value.message == (
        f"This app's key was rotated less than {ROTATION_QUIET_SECONDS} seconds ago, by another request; "
        "its key is the app's key now. Retry in 1 seconds if you still need a new one."
    )
    assert store.authenticate(first.api_key) is not None
    now[0] += 1
    second = store.rotate_key(created.app.id)
    assert store.authenticate(first.api_key) is None
    assert store.authenticate(second.api_key) is not None


def test_plan_changes_racing_a_rotation_lose_neither(tables: Tables) -> None:
    for attempt in range(5):
        store = AppStore(tables)
        created = store.create_app(f"Acme {attempt}", "free")
        new_key = _race_plan_change_and_rotation(store, created.app.id)
        app = store.authenticate(new_key)
        assert app is not None
        assert app.plan == "business"
        assert store.authenticate(created.api_key) is None


def _race_plan_change_and_rotation(store: AppStore, app_id: str) -> str:
    barrier = threading.Barrier(2)

    def change_plan() -> None:
        barrier.wait()
        store.set_plan(app_id, "business")

    def rotate() -> str:
        barrier.wait()
        return store.rotate_key(app_id).api_key

    with ThreadPoolExecutor(max_workers=2) as pool:
        planned = pool.submit(change_plan)
        rotated = pool.submit(rotate)
        planned.result()
        return rotated.result()


def test_concurrent_plan_changes_leave_the_key_row_on_the_last_one(tables: Tables) -> None:
    store = AppStore(tables)
    created = store.create_app("Acme", "free")
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda plan: store.set_plan(created.app.id, plan), ["pro", "business"] * 6))
    stored = store.get_app(created.app.id)
    app = store.authenticate(created.api_key)
    assert stored is not None
    assert app is not None
    assert app.plan == stored.plan


def test_list_apps_pages_by_creation_then_id_without_secrets(tables: Tables) -> None:
    now = [1_000.0]
    store = AppStore(tables, clock=lambda: now[0])
    created = []
    for n in range(7):
        now[0] = 1_000.0 + n // 2  # pairs share a second: the id breaks the tie
        created.append(store.create_app(f"app {n}", PLANS[n % len(PLANS)]).app)
    oldest_first = [app.id for app in sorted(created, key=lambda app: (app.created_at, app.id))]
    listed = {app.id: AppInfo(app.id, app.name, app.plan, app.created_at) for app in created}

    for newest_first, expected in ((False, oldest_first), (True, oldest_first[::-1])):
        seen: list[str] = []
        after = None
        while True:
            page = store.list_apps(limit=3, after=after, newest_first=newest_first)
            seen += [app.id for app in page.apps]
            assert page.apps == [listed[app.id] for app in page.apps]
            assert all(
                not hasattr(app, "key_hash") and not hasattr(app, "webhook_secret") for app in page.apps
            )
            if not page.has_more:
                break
            after = page.apps[-1].id
        assert seen == expected

    assert store.list_apps(limit=7, after=None, newest_first=True).has_more is False
    assert store.list_apps(limit=6, after=None, newest_first=True).has_more is True
    assert store.list_apps(limit=3, after=oldest_first[3], newest_first=False).has_more is False
    last = store.list_apps(limit=10, after=oldest_first[-1], newest_first=False)
    assert (last.apps, last.has_more) == ([], False)
    with pytest.raises(InvalidRequest) as refused:
        store.list_apps(limit=3, after="app_unknown", newest_first=True)
    assert refused.value.param == "after"


def test_list_apps_reads_no_secret_columns(tables: Tables) -> None:
    store = AppStore(tables)
    store.create_app("Acme", "pro")
    queried: list[object] = []
    table = tables.get(APPS_TABLE)
    original = table.query_entities

    def spy(*args: object, **kwargs: object) -> object:
        queried.append(kwargs.get("select"))
        return original(*args, **kwargs)  # type: ignore[arg-type]

    store._apps = type("Spy", (), {"query_entities": staticmethod(spy)})()  # type: ignore[assignment]
    page = store.list_apps(limit=5, after=None, newest_first=True)

    assert [app.name for app in page.apps] == ["Acme"]
    assert queried
    assert all(
        isinstance(select, list) and not {"key_hash", "webhook_secret"} & set(select) for select in queried
    )


def test_new_keys_secrets_and_ids_have_their_documented_shapes(tables: Tables) -> None:
    created = AppStore(tables).create_app("Acme", "pro")
    assert len(created.api_key) - len(KEY_PREFIX) == 43  # 32 random bytes, url-safe base64 unpadded
    secret = created.app.webhook_secret
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32  # Standard Webhooks
    assert created.app.id.startswith("app_")
    assert len(created.app.id) == len("app_") + 32


def test_listing_after_an_unknown_id_names_it(tables: Tables) -> None:
    store = AppStore(tables)
    store.create_app("Acme", "pro")
    with pytest.raises(InvalidRequest) as refused:
        store.list_apps(limit=10, after="app_missing", newest_first=False)
    assert refused.value.message == "Invalid 'after': no app has the id 'app_missing'."
    assert refused.value.param == "after"


class _Interleaved:
    """A store's table client with an injected interleaving: `before` runs once, just before the
    client's first `operation` call, so that a competing store commits a real write between this
    store's read and its write. Whatever conflict follows is Azurite's own answer."""

    def __init__(self, client: TableClient, operation: str, before: Callable[[], object]) -> None:
        self._client = client
        self._operation = operation
        self._before: Callable[[], object] | None = before

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        before = self._before
        if name != self._operation or before is None:
            return attribute
        self._before = None

        def interleaved(*args: Any, **kwargs: Any) -> Any:
            before()
            return attribute(*args, **kwargs)

        return interleaved


def _rows(tables: Tables, name: str) -> dict[str, dict[str, object]]:
    return {str(row["RowKey"]): dict(row) for row in tables.get(name).list_entities()}


def _assert_key_row_follows_app_row(tables: Tables, app_id: str, version: int) -> None:
    """The app row has been written `version` times, and its key's row (the only key row) carries
    what authentication needs of it, as of that version."""
    app_row = _rows(tables, APPS_TABLE)[app_id]
    key_rows = _rows(tables, APP_KEYS_TABLE)
    assert app_row["version"] == version
    assert list(key_rows) == [app_row["key_hash"]]
    key_row = key_rows[str(app_row["key_hash"])]
    assert key_row["app_version"] == version
    assert {name: key_row[name] for name in ("name", "plan", "created_at", "webhook_secret")} == {
        name: app_row[name] for name in ("name", "plan", "created_at", "webhook_secret")
    }
    assert key_row["app_id"] == app_id


def test_each_write_of_the_app_row_counts_and_its_key_row_follows(tables: Tables) -> None:
    now = [1_800_000_000.0]
    store = AppStore(tables, clock=lambda: now[0])
    created = store.create_app("Acme", "free")
    _assert_key_row_follows_app_row(tables, created.app.id, 1)

    store.set_plan(created.app.id, "pro")
    _assert_key_row_follows_app_row(tables, created.app.id, 2)

    rotated = store.rotate_key(created.app.id)
    _assert_key_row_follows_app_row(tables, created.app.id, 3)
    assert _rows(tables, APPS_TABLE)[created.app.id]["retired_key_hash"] == hash_key(created.api_key)

    store.set_plan(created.app.id, "business")
    _assert_key_row_follows_app_row(tables, created.app.id, 4)
    app = store.authenticate(rotated.api_key)
    assert app is not None
    assert app.plan == "business"


def test_the_next_rotation_removes_the_key_row_an_interrupted_rotation_left_behind(tables: Tables) -> None:
    now = [1_800_000_000.0]
    store = AppStore(tables, clock=lambda: now[0])
    created = store.create_app("Acme", "pro")
    first = store.rotate_key(created.app.id)
    # A rotation interrupted after its app row write (which names the old key as retired) and
    # before deleting the old key's row leaves that row as it was: written here with the real
    # table client, as create_app wrote it.
    tables.get(APP_KEYS_TABLE).create_entity(
        {
            "PartitionKey": "key",
            "RowKey": hash_key(created.api_key),
            "app_id": created.app.id,
            "name": "Acme",
            "plan": "pro",
            "created_at": created.app.created_at,
            "webhook_secret": created.app.webhook_secret,
            "app_version": 1,
        }
    )
    assert store.authenticate(created.api_key) is not None  # the interrupted rotation's hole

    now[0] += ROTATION_QUIET_SECONDS
    second = store.rotate_key(created.app.id)

    assert store.authenticate(created.api_key) is None
    assert store.authenticate(first.api_key) is None
    assert store.authenticate(second.api_key) is not None
    assert list(_rows(tables, APP_KEYS_TABLE)) == [hash_key(second.api_key)]


def test_a_plan_change_that_loses_the_app_row_to_another_applies_on_top_of_it(tables: Tables) -> None:
    store, other = AppStore(tables), AppStore(tables)
    created = store.create_app("Acme", "free")
    store._apps = _Interleaved(  # type: ignore[assignment]
        store._apps, "update_entity", lambda: other.set_plan(created.app.id, "pro")
    )

    changed = store.set_plan(created.app.id, "business")

    assert changed is not None
    assert changed.plan == "business"
    _assert_key_row_follows_app_row(tables, created.app.id, 3)


def test_a_plan_change_leaves_the_key_row_to_a_later_one_that_synced_first(tables: Tables) -> None:
    store, other = AppStore(tables), AppStore(tables)
    created = store.create_app("Acme", "free")
    # Between this plan change's app row write and its key row read, a later plan change
    # writes both rows.
    store._keys = _Interleaved(  # type: ignore[assignment]
        store._keys, "get_entity", lambda: other.set_plan(created.app.id, "business")
    )

    store.set_plan(created.app.id, "pro")

    _assert_key_row_follows_app_row(tables, created.app.id, 3)
    app = store.authenticate(created.api_key)
    assert app is not None
    assert app.plan == "business"


def test_a_plan_change_whose_key_row_write_loses_to_an_earlier_ones_reads_again(tables: Tables) -> None:
    """Two plan changes; the earlier one's key row sync lands between the later one's read of the
    key row and its write: the later one must not give up on a key row now one version behind."""
    earlier, later = AppStore(tables), AppStore(tables)
    created = earlier.create_app("Acme", "free")
    earlier_wrote_app_row, later_read_key_row, earlier_done = (threading.Event() for _ in range(3))

    def earlier_pauses_before_its_key_row_read() -> None:
        earlier_wrote_app_row.set()
        assert later_read_key_row.wait(10)

    def later_pauses_before_its_key_row_write() -> None:
        later_read_key_row.set()
        assert earlier_done.wait(10)

    earlier._keys = _Interleaved(  # type: ignore[assignment]
        earlier._keys, "get_entity", earlier_pauses_before_its_key_row_read
    )
    later._keys = _Interleaved(  # type: ignore[assignment]
        later._keys, "update_entity", later_pauses_before_its_key_row_write
    )

    def change_early() -> None:
        try:
            earlier.set_plan(created.app.id, "pro")
        finally:
            earlier_done.set()

    with ThreadPoolExecutor(max_workers=1) as pool:
        early = pool.submit(change_early)
        assert earlier_wrote_app_row.wait(10)
        later.set_plan(created.app.id, "business")
        early.result()

    _assert_key_row_follows_app_row(tables, created.app.id, 3)
    app = later.authenticate(created.api_key)
    assert app is not None
    assert app.plan == "business"


def _old_code_rows(tables: Tables, api_key: str) -> None:
    tables.get(APPS_TABLE).create_entity(
        {
            "PartitionKey": "app",
            "RowKey": "app_old",
            "name": "Old",
            "plan": "pro",
            "created_at": 1_700_000_000,
            "key_hash": hash_key(api_key),
            "webhook_secret": "whsec_old",
        }
    )
    tables.get(APP_KEYS_TABLE).create_entity(
        {"PartitionKey": "key", "RowKey": hash_key(api_key), "app_id": "app_old"}
    )


def test_old_rows_count_from_no_write_and_their_key_row_is_brought_up_to_that(tables: Tables) -> None:
    api_key = "sgw_old_code_key_" + "o" * 30
    _old_code_rows(tables, api_key)
    store = AppStore(tables)

    assert store.authenticate(api_key) is not None
    assert _rows(tables, APP_KEYS_TABLE)[hash_key(api_key)]["app_version"] == 0

    store.set_plan("app_old", "business")
    _assert_key_row_follows_app_row(tables, "app_old", 1)


def test_upgrading_an_old_key_row_yields_to_a_plan_change_that_wrote_it_first(tables: Tables) -> None:
    api_key = "sgw_old_code_key_" + "o" * 30
    _old_code_rows(tables, api_key)
    store, other = AppStore(tables), AppStore(tables)
    store._keys = _Interleaved(  # type: ignore[assignment]
        store._keys, "update_entity", lambda: other.set_plan("app_old", "business")
    )

    app = store.authenticate(api_key)

    assert app is not None
    assert (app.id, app.plan) == ("app_old", "pro")  # as read, before the plan change
    _assert_key_row_follows_app_row(tables, "app_old", 1)
    again = store.authenticate(api_key)
    assert again is not None
    assert again.plan == "business"


def test_upgrading_an_old_key_row_yields_to_a_rotation_that_deleted_it_first(tables: Tables) -> None:
    api_key = "sgw_old_code_key_" + "o" * 30
    new_key = "sgw_new_key_" + "n" * 30
    _old_code_rows(tables, api_key)
    store, other = AppStore(tables), AppStore(tables)
    store._keys = _Interleaved(  # type: ignore[assignment]
        store._keys, "update_entity", lambda: other.replace_key("app_old", new_key)
    )

    app = store.authenticate(api_key)

    assert app is not None
    assert app.key_hash == hash_key(api_key)  # as read, before the rotation
    assert store.authenticate(api_key) is None
    assert store.authenticate(new_key) is not None
    _assert_key_row_follows_app_row(tables, "app_old", 1)


def test_ensure_app_racing_another_ensure_of_the_same_app_returns_it(tables: Tables) -> None:
    api_key = "sgw_dev_key_" + "d" * 30
    store, other = AppStore(tables), AppStore(tables)
    # Between this call's "no such app" and its create, the other call creates the app.
    store._keys = _Interleaved(  # type: ignore[assignment]
        store._keys, "create_entity", lambda: other.ensure_app("app_dev", "Dev", "pro", api_key)
    )

    app = store.ensure_app("app_dev", "Dev", "pro", api_key)

    assert app == other.get_app("app_dev")
    assert store.authenticate(api_key) == app
    _assert_key_row_follows_app_row(tables, "app_dev", 1)


def test_ensure_app_adopting_a_new_key_never_lets_it_act_for_anything_but_the_stored_app(
    tables: Tables,
) -> None:
    store, observer = AppStore(tables), AppStore(tables)
    created = store.create_app("Dev", "business", app_id="app_dev")
    new_key = "sgw_dev_key_" + "d" * 30
    seen: list[object] = []

    def check() -> None:
        # Before each storage call of ensure_app, the new key either fails or is the stored app.
        app = observer.authenticate(new_key)
        seen.append(app)
        assert app is None or replace(app, key_hash="") == replace(created.app, key_hash="")

    class Observed:
        def __init__(self, client: TableClient) -> None:
            self._client = client

        def __getattr__(self, name: str) -> Any:
            attribute = getattr(self._client, name)

            def observed(*args: Any, **kwargs: Any) -> Any:
                check()
                return attribute(*args, **kwargs)

            return observed

    store._apps = Observed(store._apps)  # type: ignore[assignment]
    store._keys = Observed(store._keys)  # type: ignore[assignment]

    adopted = store.ensure_app("app_dev", "Dev", "free", new_key)

    check()
    assert adopted.plan == "business"
    assert adopted.webhook_secret == created.app.webhook_secret
    assert store.authenticate(created.api_key) is None
    assert seen[-1] is not None
