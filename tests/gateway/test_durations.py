"""Learned durations (gateway/durations.py): the sketch's quantiles, its bounded size and decay,
and the record in a real Azurite: it outlives the process that wrote it (a new store reads it,
as after a restart), stays one small row however many jobs it learns from, and loses no job to
writers racing on the row."""

from __future__ import annotations

import json
import random
import threading
import uuid

import pytest

from gateway.durations import (
    BUCKET_RATIO,
    BUCKETS,
    CACHE_SECONDS,
    DECAY,
    MIN_JOBS,
    DurationSketch,
    DurationStore,
    JobKind,
    LearnedDurations,
    trusted,
)
from gateway.tables import DURATIONS_TABLE, Tables

KIND = JobKind(provider="fal", model="fal-ai/veo3.1/fast", size="1280x720", seconds="8")


def sketch_of(*durations: float) -> DurationSketch:
    sketch = DurationSketch()
    for seconds in durations:
        sketch = sketch.add(seconds)
    return sketch


# --- the sketch ----------------------------------------------------------------------------------


def weighted_quantile(durations: list[float], q: float) -> float:
    """The q-quantile with each job weighed as the sketch does: the newest 1, the one before DECAY..."""
    weighted = sorted((seconds, DECAY ** (len(durations) - 1 - i)) for i, seconds in enumerate(durations))
    target, cumulative = q * sum(w for _, w in weighted), 0.0
    for seconds, weight in weighted:
        cumulative += weight
        if cumulative >= target:
            return seconds
    return weighted[-1][0]


def test_quantiles_land_within_a_bucket_of_the_true_ones() -> None:
    rng = random.Random(3)  # noqa: S311 - a seeded sample, not a secret
    durations = [rng.uniform(60, 180) for _ in range(200)]
    sketch = sketch_of(*durations)
    for q in (0.1, 0.5, 0.9):
        assert sketch.quantile(q) == pytest.approx(weighted_quantile(durations, q), rel=BUCKET_RATIO - 1)


def test_a_quantile_above_a_time_counts_only_the_longer_durations() -> None:
    # Half the jobs take 30 s, half 300 s: one that has run 60 s is one of the long ones.
    sketch = sketch_of(*([30.0, 300.0] * 10))
    assert sketch.quantile(0.4) < 60
    assert sketch.quantile(0.5, above=60) == pytest.approx(300, rel=BUCKET_RATIO - 1)
    assert sketch.quantile(0.0, above=60) >= 60


def test_a_few_jobs_on_record_leave_weight_between_them() -> None:
    # Two jobs, 100 s and 200 s: the next may well take 150 s. As two spikes the record would
    # promise that no job ends in between, and a plan by it would skip the stretch unchecked.
    sketch = sketch_of(100.0, 200.0)
    assert 0.3 < sketch.cdf_weight(150.0) / sketch.total < 0.7
    assert 120 < sketch.quantile(0.5) < 180


def test_many_jobs_in_two_places_keep_nearly_all_their_weight_there() -> None:
    sketch = sketch_of(*([30.0, 300.0] * 10))
    between = sketch.cdf_weight(290.0) - sketch.cdf_weight(32.0)
    assert 0.5 < between <= 1.0 + 1e-9  # one job's weight lent to the stretch, of about 18


def test_past_every_recorded_duration_there_is_no_quantile() -> None:
    assert sketch_of(30.0, 31.0, 32.0).quantile(0.5, above=60) is None
    assert DurationSketch().quantile(0.5) is None


def test_older_jobs_weigh_less_so_a_change_of_pace_shows() -> None:
    # 70 slow jobs, then 30 fast ones: counted alike, the median would be slow (200 s); with
    # each job weighing 0.98 of the one after it, the 30 recent ones outweigh the 70.
    slow_then_fast = sketch_of(*([200.0] * 70 + [100.0] * 30))
    assert slow_then_fast.quantile(0.5) == pytest.approx(100, rel=BUCKET_RATIO - 1)
    assert slow_then_fast.total == pytest.approx((1 - 0.98**100) / 0.02, rel=1e-6)


def test_the_sketch_stays_bounded_however_many_jobs_it_learns() -> None:
    rng = random.Random(5)  # noqa: S311 - a seeded sample, not a secret
    sketch = sketch_of(*(rng.lognormvariate(4.5, 1.5) for _ in range(20_000)), 0.0, 10**9)
    assert len(sketch.weights) <= BUCKETS
    assert all(0 <= index < BUCKETS for index in sketch.weights)
    # As stored: a Table property holds at most 64 KiB; the row has three of these.
    assert len(sketch.to_json()) < 8_000


def test_a_sketch_survives_json_to_the_stored_precision() -> None:
    sketch = sketch_of(12.0, 95.5, 95.6, 400.0)
    restored = DurationSketch.from_json(sketch.to_json())
    assert restored.weights.keys() == sketch.weights.keys()
    assert restored.quantile(0.5) == pytest.approx(sketch.quantile(0.5), rel=1e-3)
    assert DurationSketch.from_json(None) == DurationSketch()


def test_stored_buckets_outside_the_range_are_dropped_not_trusted() -> None:
    text = json.dumps({"-1": 1.0, str(BUCKETS): 1.0, "10": 2.0, "11": 0})
    assert DurationSketch.from_json(text).weights == {10: 2.0}


# --- what a record holds -------------------------------------------------------------------------


def test_a_start_seen_closely_splits_the_job_into_queue_and_render() -> None:
    record = LearnedDurations().observe(100.0, began=20.0)
    assert record.queue.quantile(0.5) == pytest.approx(20, rel=BUCKET_RATIO - 1)
    assert record.render.quantile(0.5) == pytest.approx(80, rel=BUCKET_RATIO - 1)
    assert record.total.quantile(0.5) == pytest.approx(100, rel=BUCKET_RATIO - 1)


def test_without_a_start_only_the_total_is_learned() -> None:
    record = LearnedDurations().observe(100.0)
    assert (record.queue, record.render, record.jobs) == (DurationSketch(), DurationSketch(), 1)
    # A start after the end is a bad reading, not a negative render time.
    assert LearnedDurations().observe(100.0, began=150.0).render == DurationSketch()


def test_a_kind_is_trusted_from_its_third_job() -> None:
    sketch = DurationSketch()
    for _ in range(MIN_JOBS - 1):
        sketch = sketch.add(60.0)
        assert not trusted(sketch)
    assert trusted(sketch.add(60.0))


def test_kinds_differing_in_any_part_have_their_own_rows() -> None:
    others = [
        JobKind("fal2", KIND.model, KIND.size, KIND.seconds),
        JobKind(KIND.provider, "fal-ai/veo3.1", KIND.size, KIND.seconds),
        JobKind(KIND.provider, KIND.model, "720x1280", KIND.seconds),
        JobKind(KIND.provider, KIND.model, KIND.size, "4"),
    ]
    keys = {kind.row_key for kind in [KIND, *others]}
    assert len(keys) == 5
    assert all("/" not in key and "#" not in key for key in keys)  # RowKey-safe whatever the model


# --- the record in Azurite -----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_record_outlives_the_store_that_wrote_it(tables: Tables) -> None:
    writer = DurationStore(tables)
    for total in (90.0, 100.0, 110.0):
        writer.record(KIND, total, began=10.0)
    # A new store, as in a process started after a restart: it reads what the first one wrote.
    reader = DurationStore(tables)
    learned = reader.learned(KIND)
    assert learned.jobs == 3
    assert learned.total.quantile(0.5) == pytest.approx(100, rel=BUCKET_RATIO - 1)
    assert learned.render.quantile(0.5) == pytest.approx(90, rel=BUCKET_RATIO - 1)
    assert reader.learned(JobKind("other", "m", "1x1", "4")) == LearnedDurations()


def test_the_row_stays_small_after_many_jobs(tables: Tables) -> None:
    store = DurationStore(tables)
    rng = random.Random(11)  # noqa: S311 - a seeded sample, not a secret
    for _ in range(300):
        store.record(KIND, rng.uniform(20, 2000), began=rng.uniform(0, 10))
    row = tables.get(DURATIONS_TABLE).get_entity("kind", KIND.row_key)
    assert row["jobs"] == 300
    assert (row["provider"], row["model"], row["size"], row["seconds"]) == (
        KIND.provider,
        KIND.model,
        KIND.size,
        KIND.seconds,
    )
    assert sum(len(row[name]) for name in ("queue", "render", "total")) < 12_000


def test_racing_writers_lose_no_job(tables: Tables) -> None:
    stores = [DurationStore(tables) for _ in range(4)]

    def record(store: DurationStore) -> None:
        for _ in range(5):
            store.record(KIND, 60.0)

    threads = [threading.Thread(target=record, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert DurationStore(tables).learned(KIND).jobs == 20


def test_a_read_is_trusted_for_a_while_then_read_again(tables: Tables) -> None:
    clock = Clock()
    reader = DurationStore(tables, clock=clock)
    assert reader.learned(KIND).jobs == 0
    DurationStore(tables).record(KIND, 60.0)  # another process learns a job
    assert reader.learned(KIND).jobs == 0  # cached
    clock.now += CACHE_SECONDS
    assert reader.learned(KIND).jobs == 1


def test_storage_trouble_reads_as_nothing_learned_and_records_nothing(
    tables: Tables, caplog: pytest.LogCaptureFixture
) -> None:
    """A fault Azurite cannot be made to give per table: the table client raises (injected)."""

    class Broken(Tables):
        def get(self, name: str) -> object:  # type: ignore[override]
            raise ConnectionError("storage is down")

    store = DurationStore(Broken(tables._service, prefix="x" + uuid.uuid4().hex[:8]))
    store.record(KIND, 60.0)  # no raise
    assert store.learned(KIND) == LearnedDurations()
    assert "not recorded" in caplog.text
    assert "unreadable" in caplog.text
