"""App records and keys, against Azurite."""

from __future__ import annotations

from gateway.apps import KEY_PREFIX, AppStore, hash_key
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
