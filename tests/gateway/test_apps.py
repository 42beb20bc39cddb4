"""App records and keys, against Azurite."""

from __future__ import annotations

import base64
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from gateway.apps import KEY_PREFIX, ROTATION_QUIET_SECONDS, AppStore, ConcurrentUpdate, hash_key
from gateway.errors import InvalidRequest
from gateway.tables import APP_KEYS_TABLE, APPS_TABLE, Tables


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
    with pytest.raises(ConcurrentUpdate):
        store.replace_key(created.app.id, "sgw_loser_" + "l" * 30)
    apps.get_entity = real_get  # type: ignore[method-assign]

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
    assert refused.value.headers["Retry-After"] == "1"
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
        created.append(store.create_app(f"app {n}", "pro").app)
    oldest_first = [app.id for app in sorted(created, key=lambda app: (app.created_at, app.id))]

    for newest_first, expected in ((False, oldest_first), (True, oldest_first[::-1])):
        seen: list[str] = []
        after = None
        while True:
            page = store.list_apps(limit=3, after=after, newest_first=newest_first)
            seen += [app.id for app in page.apps]
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
