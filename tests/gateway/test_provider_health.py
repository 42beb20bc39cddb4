"""Provider health against a real Azurite: counts, the cool-down circuit (closed, open,
half-open), ETag-guarded updates from many threads, and storage trouble that never reaches a job.

The storage outage is real, as in tests/gateway/test_storage_seam.py: an Azurite of the test's
own is stopped (connections refused), so no other test's storage is disturbed.
"""

from __future__ import annotations

import logging
import threading
import uuid
from pathlib import Path

import pytest

from devhost.azurite import Azurite
from gateway.errors import SettingsError, StorageUnavailable
from gateway.health import CACHE_SECONDS, OUTCOMES, ProviderHealth, ProviderState
from gateway.settings import AZURITE_KEY, Settings
from gateway.tables import Tables, table_service
from tests.conftest import running_azurite

PROVIDER_KEY = "sk-provider-secret-" + "z" * 20


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def store(tables: Tables, clock: Clock, failures: int = 3, cool_down: float = 60.0) -> ProviderHealth:
    return ProviderHealth(tables, clock=clock, failures_to_cool_down=failures, cool_down_seconds=cool_down)


def test_each_outcome_is_counted_and_latency_is_averaged(tables: Tables) -> None:
    clock = Clock()
    health = store(tables, clock)
    health.record("fal", "accepted", latency_ms=100.0)
    health.record("fal", "accepted", latency_ms=200.0)
    health.record("fal", "refused")
    health.record("fal", "throttled")
    clock.now += 5
    health.record("fal", "failed")

    state = health.states()["fal"]
    assert (state.accepted, state.refused, state.failed, state.throttled) == (2, 1, 1, 1)
    assert state.consecutive_failures == 1
    assert (state.last_outcome, state.last_outcome_at) == ("failed", clock.now)
    assert state.latency_ms == 120.0  # 100, then 20 % of the way to 200
    assert state.cooling_down_until is None
    assert state.up(clock.now)
    assert list(health.states()) == ["fal"]


def test_refused_and_throttled_only_count(tables: Tables) -> None:
    clock = Clock()
    health = store(tables, clock, failures=2)
    health.record("aimlapi", "failed")
    for outcome in ("refused", "throttled", "refused"):
        health.record("aimlapi", outcome)
    assert not health.cooling_down("aimlapi")
    # The run of failures went on through them: the next failure is the second in a row.
    health.record("aimlapi", "failed")
    assert health.cooling_down("aimlapi")


def test_the_cool_down_starts_at_the_nth_failure_not_before(tables: Tables) -> None:
    clock = Clock()
    health = store(tables, clock, failures=3, cool_down=60.0)
    for _ in range(2):
        health.record("gemini", "failed")
        assert not health.cooling_down("gemini")
    health.record("gemini", "failed")
    assert health.cooling_down("gemini")
    state = health.states()["gemini"]
    assert (state.consecutive_failures, state.cooling_down_until) == (3, clock.now + 60.0)
    assert not state.up(clock.now)
    # Another gateway instance (no cache of its own yet) sees it too: the state is in storage.
    assert store(tables, clock).cooling_down("gemini")


def test_an_accepted_create_ends_the_cool_down(tables: Tables) -> None:
    clock = Clock()
    health = store(tables, clock, failures=1)
    health.record("geminigen", "failed")
    assert health.cooling_down("geminigen")
    health.record("geminigen", "accepted", latency_ms=50.0)
    assert not health.cooling_down("geminigen")
    state = health.states()["geminigen"]
    assert (state.consecutive_failures, state.cooling_down_until) == (0, None)
    # A fresh run: one failure is enough again (threshold 1), two are not needed.
    health.record("geminigen", "failed")
    assert health.cooling_down("geminigen")


def test_after_the_cool_down_one_more_failure_cools_down_again(tables: Tables) -> None:
    clock = Clock()
    health = store(tables, clock, failures=3, cool_down=30.0)
    for _ in range(3):
        health.record("openai", "failed")
    assert health.cooling_down("openai")
    clock.now += 29.9
    assert health.cooling_down("openai")
    clock.now += 0.1  # cooling_down_until is the first moment it is up again
    assert not health.cooling_down("openai")
    assert health.states()["openai"].up(clock.now)
    # Half-open: the run is still at the threshold, so the retry's failure closes it again at once.
    health.record("openai", "failed")
    assert health.cooling_down("openai")
    assert health.states()["openai"].cooling_down_until == clock.now + 30.0


def test_cooling_down_reads_are_cached_briefly_per_process(tables: Tables) -> None:
    clock = Clock()
    reader, writer = store(tables, clock, failures=1), store(tables, clock, failures=1)
    assert not reader.cooling_down("azure-openai")  # read (no row yet) and remembered
    writer.record("azure-openai", "failed")
    assert writer.cooling_down("azure-openai")  # its own recording, at once
    # The other instance trusts what it read for CACHE_SECONDS, then reads again.
    assert not reader.cooling_down("azure-openai")
    threading.Event().wait(CACHE_SECONDS + 0.2)
    assert reader.cooling_down("azure-openai")


def test_concurrent_records_lose_no_count(azurite: Azurite) -> None:
    """Many threads, each its own gateway instance (store and clients), on one row: every
    update is conditioned on the ETag, so a lost race reads again instead of overwriting."""
    prefix = "h" + uuid.uuid4().hex[:10]
    threads, rounds = 6, 12
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work(index: int) -> None:
        health = store(Tables(table_service(azurite.connection_string), prefix=prefix), Clock())
        barrier.wait()
        try:
            for round_ in range(rounds):
                health.record("fal", OUTCOMES[(index + round_) % len(OUTCOMES)], latency_ms=10.0)
        except BaseException as error:
            errors.append(error)

    workers = [threading.Thread(target=work, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert errors == []
    state = store(Tables(table_service(azurite.connection_string), prefix=prefix), Clock()).states()["fal"]
    total = threads * rounds
    assert (state.accepted, state.refused, state.failed, state.throttled) == (total // 4,) * 4


def test_any_account_name_is_kept(tables: Tables) -> None:
    """Table keys forbid '/', '#', '?' and more; such names are hashed into the key, kept in the row."""
    clock = Clock()
    health = store(tables, clock, failures=1)
    odd = "team/veo #2?"
    health.record(odd, "failed")
    assert health.cooling_down(odd)
    assert set(health.states()) == {odd}


def test_an_unknown_outcome_is_a_callers_bug(tables: Tables) -> None:
    with pytest.raises(ValueError, match="outcome"):
        store(tables, Clock()).record("fal", "exploded")


def test_storage_outage_is_swallowed_and_logged_without_secrets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Recording and asking must never fail a job: with storage down they log and go on."""
    caplog.set_level(logging.DEBUG)
    clock = Clock()
    with running_azurite(tmp_path / "azurite") as emulator:
        tables = Tables(table_service(emulator.connection_string), prefix="o" + uuid.uuid4().hex[:10])
        health = store(tables, clock, failures=1)
        health.record("fal", "accepted", latency_ms=10.0)
        emulator.stop()  # connections refused from now on

        health.record("fal", "failed")  # no raise
        fresh = store(tables, clock, failures=1)
        assert fresh.cooling_down("fal") is False  # unreadable: treated as up, no raise
        with pytest.raises(StorageUnavailable):  # the health endpoint's read does raise
            fresh.states()

    warnings = [record.getMessage() for record in caplog.records if record.name == "gateway.health"]
    assert any("failed outcome of fal not recorded: StorageUnavailable" in line for line in warnings)
    assert any("state of fal unreadable" in line for line in warnings)
    everything = caplog.text + "\n".join(record.getMessage() for record in caplog.records)
    for secret in (AZURITE_KEY, PROVIDER_KEY, "AccountKey"):
        assert secret not in everything


def test_an_account_with_no_record_is_up() -> None:
    fresh = ProviderState.fresh("x")
    assert fresh.up(0.0)
    assert (fresh.accepted, fresh.consecutive_failures, fresh.last_outcome) == (0, 0, None)


MINIMAL = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "AIMLAPI_API_KEY": "aiml-key"}


def test_the_cool_down_settings_default_and_are_read() -> None:
    defaults = Settings.from_env(MINIMAL)
    assert (defaults.provider_failures_to_cool_down, defaults.provider_cool_down_seconds) == (3, 60.0)
    read = Settings.from_env(
        {**MINIMAL, "PROVIDER_FAILURES_TO_COOL_DOWN": "5", "PROVIDER_COOL_DOWN_SECONDS": "2.5"}
    )
    assert (read.provider_failures_to_cool_down, read.provider_cool_down_seconds) == (5, 2.5)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("PROVIDER_FAILURES_TO_COOL_DOWN", "0"),
        ("PROVIDER_FAILURES_TO_COOL_DOWN", "two"),
        ("PROVIDER_FAILURES_TO_COOL_DOWN", "1.5"),
        ("PROVIDER_COOL_DOWN_SECONDS", "0"),
        ("PROVIDER_COOL_DOWN_SECONDS", "-1"),
        ("PROVIDER_COOL_DOWN_SECONDS", "soon"),
        ("PROVIDER_COOL_DOWN_SECONDS", "inf"),
    ],
)
def test_a_bad_cool_down_setting_is_named(key: str, value: str) -> None:
    with pytest.raises(SettingsError, match=key):
        Settings.from_env({**MINIMAL, key: value})
