"""Quota decisions (gateway/quota.py), pure: no storage, fixed clock.

tests/gateway/test_quota.py checks the same store against Azurite, concurrency included; these
pin each rule of the decision on its own.
"""

from __future__ import annotations

import array
import json
import struct

import pytest

from gateway.quota import (
    CAPACITY,
    Entries,
    Limits,
    QuotaState,
    Usage,
    _contains,  # the row's two small helpers, pinned directly
    _without,
    decide,
    decode_state,
    encode_state,
    holds,
    to_ms,
    usage_of,
    within_capacity,
)

NOW = 1_000_000.0
HOUR, DAY = 3600, 86400
LIMITS = Limits(hour=2, day=3)


def taken(*ages: float) -> Entries:
    """Admissions taken `ages` seconds ago, tickets t0, t1, ..."""
    return [(NOW - age, f"t{index}") for index, age in enumerate(ages)]


def test_room_in_both_windows_admits_and_counts_the_new_slot() -> None:
    admission = decide(taken(100), LIMITS, "new", NOW)
    assert admission.admitted
    assert (admission.window, admission.retry_after) == (None, None)
    assert admission.usage.used == {"hour": 2, "day": 2}
    assert admission.usage.remaining("hour") == 0


def test_a_full_hour_refuses_until_its_oldest_slot_frees() -> None:
    admission = decide(taken(1000, 10), LIMITS, "new", NOW)
    assert not admission.admitted
    assert admission.window == "hour"
    assert admission.retry_after == HOUR - 1000  # the slot taken 1000 s ago frees first
    assert admission.usage.used == {"hour": 2, "day": 2}  # a refusal takes nothing


def test_a_full_day_refuses_even_with_room_in_the_hour() -> None:
    admission = decide(taken(50_000, 40_000, 30_000), LIMITS, "new", NOW)
    assert not admission.admitted
    assert admission.window == "day"
    assert admission.retry_after == DAY - 50_000


def test_the_hour_is_checked_before_the_day() -> None:
    admission = decide(taken(20_000, 100, 50), LIMITS, "new", NOW)
    assert (admission.admitted, admission.window) == (False, "hour")


def test_a_ticket_holding_a_slot_is_admitted_again_without_a_second_slot() -> None:
    entries = taken(1000, 10)  # the hour is full, and t1 is one of its slots
    admission = decide(entries, LIMITS, "t1", NOW)
    assert admission.admitted
    assert admission.usage.used == {"hour": 2, "day": 2}
    assert admission.usage.limits == LIMITS
    assert holds(entries, "t1")
    assert not holds(entries, "t9")


def test_slots_leave_the_window_when_it_has_passed() -> None:
    # Exactly one window old is outside it: the window is (now - length, now].
    admission = decide(taken(HOUR, HOUR + 5), LIMITS, "new", NOW)
    assert admission.admitted
    assert admission.usage.used == {"hour": 1, "day": 3}


def test_a_lowered_limit_waits_for_the_slot_that_brings_use_under_it() -> None:
    # Four slots in the hour against a limit of two: one more fits once only one is left, so
    # three must free and the third oldest decides.
    admission = decide(taken(3000, 2000, 1000, 10), Limits(hour=2, day=100), "new", NOW)
    assert not admission.admitted
    assert admission.retry_after == HOUR - 1000


def test_a_zero_limit_refuses_for_a_whole_window() -> None:
    admission = decide([], Limits(hour=0, day=10), "new", NOW)
    assert (admission.admitted, admission.window, admission.retry_after) == (False, "hour", HOUR)


@pytest.mark.parametrize(
    ("age", "expected"),
    [(HOUR - 0.2, 1), (HOUR - 1.5, 2), (0.0, HOUR)],
    ids=["about-to-free", "rounded-up", "just-taken"],
)
def test_retry_after_is_whole_seconds_never_zero_never_beyond_the_window(age: float, expected: int) -> None:
    admission = decide([(NOW - age, "t0")], Limits(hour=1, day=10), "new", NOW)
    assert admission.retry_after == expected


def test_usage_reports_when_one_more_slot_frees() -> None:
    usage = usage_of(taken(1000.5, 10, 20_000), LIMITS, NOW)
    assert usage.used == {"hour": 2, "day": 3}
    assert usage.limits == LIMITS
    assert usage.resets_at == {"hour": int(NOW - 1000.5 + HOUR) + 1, "day": int(NOW - 20_000 + DAY)}
    assert usage_of([], LIMITS, NOW).resets_at == {"hour": None, "day": None}


def test_remaining_is_never_negative_and_the_headers_carry_both_windows() -> None:
    usage = Usage(limits=Limits(hour=1, day=5), used={"hour": 3, "day": 3}, resets_at={"hour": 1, "day": 1})
    assert usage.remaining("hour") == 0
    assert usage.headers() == {
        "x-ratelimit-limit-hour": "1",
        "x-ratelimit-remaining-hour": "0",
        "x-ratelimit-limit-day": "5",
        "x-ratelimit-remaining-day": "2",
        "x-budget-remaining": "unlimited",
    }


def test_a_plan_without_limits_may_not_generate() -> None:
    plans = {"free": None, "pro": {"hour": 5, "day": 20}}
    assert Limits.for_plan(plans, "pro") == Limits(hour=5, day=20)
    assert Limits.for_plan(plans, "free") is None
    assert Limits.for_plan(plans, "business") is None  # a plan missing from PLAN_LIMITS too


def test_the_packed_row_round_trips_every_admission_to_the_millisecond() -> None:
    times = array.array(
        "q", sorted(to_ms(NOW - age) for age in (0.001, 10.5, 3599.999, 86_399.999, 42.0, 42.0))
    )
    entity = encode_state("app", QuotaState(times=times, legacy={"old": times[0]}, unswept=3))
    decoded = decode_state(entity, etag="e")
    assert list(decoded.times) == list(times)
    assert (decoded.legacy, decoded.unswept, decoded.etag) == ({"old": times[0]}, 3, "e")


def test_the_packed_row_splits_into_64_kib_properties_and_refuses_beyond_capacity() -> None:
    times = array.array("q", range(0, CAPACITY * 300, 300))
    entity = encode_state("app", QuotaState(times=times))
    chunks = [value for value in entity.values() if isinstance(value, bytes)]
    assert len(chunks) == 14
    assert max(len(chunk) for chunk in chunks) == 65_536
    assert list(decode_state(entity, None).times) == list(times)
    with pytest.raises(ValueError, match="capacity"):
        encode_state("app", QuotaState(times=array.array("q", range(CAPACITY + 1))))


def test_the_old_json_row_decodes_with_its_tickets_kept() -> None:
    decoded = decode_state({"entries": json.dumps([[NOW - 5, "b"], [NOW - 9.5, "a"]])}, etag="e")
    assert list(decoded.times) == [to_ms(NOW - 9.5), to_ms(NOW - 5)]
    assert decoded.legacy == {"a": to_ms(NOW - 9.5), "b": to_ms(NOW - 5)}


def test_admissions_older_than_a_day_leave_the_state_and_count_as_unswept() -> None:
    times = array.array("q", [to_ms(NOW - DAY - 1), to_ms(NOW - DAY), to_ms(NOW - DAY + 1)])
    state = QuotaState(times=times, legacy={"gone": times[0], "kept": times[2]}, unswept=1).live(NOW)
    assert list(state.times) == [times[2]]
    assert (state.legacy, state.unswept) == ({"kept": times[2]}, 3)


def test_a_day_limit_beyond_one_row_is_capped_at_its_capacity() -> None:
    assert within_capacity(Limits(hour=10, day=10**9)) == Limits(hour=10, day=CAPACITY)
    assert within_capacity(LIMITS) == LIMITS


def test_a_time_is_held_only_when_it_is_in_the_row() -> None:
    times = [to_ms(NOW - 50), to_ms(NOW - 10)]
    assert _contains(times, to_ms(NOW - 50))
    assert _contains(times, to_ms(NOW - 10))
    assert not _contains(times, to_ms(NOW - 30))  # between two held times
    assert not _contains(times, to_ms(NOW - 90))  # before them
    assert not _contains(times, to_ms(NOW))  # after them
    assert not _contains([], to_ms(NOW))


def test_giving_a_slot_back_keeps_everything_else_of_the_row() -> None:
    times = array.array("q", [to_ms(NOW - 50), to_ms(NOW - 30), to_ms(NOW - 10)])
    state = QuotaState(times=times, legacy={"old": to_ms(NOW - 70)}, unswept=7, etag="etag-1")
    after = _without(state, to_ms(NOW - 30), {"old": to_ms(NOW - 70)})
    assert list(after.times) == [to_ms(NOW - 50), to_ms(NOW - 10)]
    assert after.legacy == {"old": to_ms(NOW - 70)}
    assert (after.unswept, after.etag) == (7, "etag-1")  # the sweep count is not reset by a refund
    assert list(state.times) == [to_ms(NOW - 50), to_ms(NOW - 30), to_ms(NOW - 10)]  # a copy


def test_the_state_row_is_a_signed_base_then_unsigned_offsets_little_endian() -> None:
    """The stored format, byte for byte: what older and newer gateways must read alike."""
    times = array.array("q", [1_800_000_000_000, 1_800_000_000_005, 1_800_000_090_000])
    legacy = {"b": times[0], "a": times[1]}  # ticket order differs from time order
    entity = encode_state("app", QuotaState(times=times, legacy=legacy, unswept=0))
    assert entity == {
        "PartitionKey": "app",
        "RowKey": "usage",
        "format": 2,
        "unswept": 0,
        "t00": struct.pack("<q3I", 1_800_000_000_000, 0, 5, 90_000),
        "legacy": json.dumps([["b", times[0]], ["a", times[1]]]),  # by time taken
    }
    assert decode_state(entity, etag="e").unswept == 0
    # A row left with no admission (its last slot given back) keeps a zero base and no offset.
    assert encode_state("app", QuotaState())["t00"] == bytes(8)
    assert list(decode_state(encode_state("app", QuotaState()), None).times) == []


@pytest.mark.parametrize(
    "times",
    [[1_800_000_000_000, 1_800_000_000_000 + 2**31 + 5], [-90_000, -5]],
    ids=["offsets-beyond-2^31-ms", "before-1970"],
)
def test_any_signed_base_and_any_unsigned_offset_round_trip(times: list[int]) -> None:
    """Offsets are unsigned 32-bit (a row may span 49 days: a clock stepped back that far still
    writes), the base a signed 64-bit integer."""
    entity = encode_state("app", QuotaState(times=array.array("q", times)))
    base, *offsets = struct.unpack(f"<q{len(times)}I", entity["t00"])
    assert (base, offsets) == (times[0], [at - times[0] for at in times])
    assert list(decode_state(entity, None).times) == times


def test_only_t_and_two_digits_name_a_chunk_of_times() -> None:
    """Other columns (added by an operator's tool, or a later version) are not read as times."""
    entity = {
        **encode_state("app", QuotaState(times=array.array("q", [1000, 2000]))),
        "tag": "three letters",
        "x01": "digits after another letter",
        "tx1": "a t, then not two digits",
    }
    assert list(decode_state(entity, None).times) == [1000, 2000]


def test_an_old_row_without_entries_holds_nothing() -> None:
    decoded = decode_state({"PartitionKey": "app", "RowKey": "usage"}, etag="e")
    assert (list(decoded.times), decoded.legacy, decoded.unswept, decoded.etag) == ([], {}, 0, "e")


def test_legacy_tickets_leave_with_their_slot_and_not_before() -> None:
    # One admission expired: the cutoff is its time, so a legacy ticket taken then leaves and
    # one taken later stays.
    times = array.array("q", [to_ms(NOW - DAY - 1), to_ms(NOW - 5)])
    state = QuotaState(times=times, legacy={"gone": times[0], "kept": times[1]}).live(NOW)
    assert list(state.times) == [times[1]]
    assert (state.legacy, state.unswept) == ({"kept": times[1]}, 1)
