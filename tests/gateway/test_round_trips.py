"""Storage round trips per request, counted at the Table client against Azurite.

An accepted create makes the calls gateway/submissions.py makes (authenticate, admit, add_job);
a read authenticates and reads the job. Counted in steady state: after a first request has
created the tables and let the quota store see its row.
"""

from __future__ import annotations

import time
import uuid

from devhost.azurite import Azurite
from gateway.quota import Limits, QuotaStore
from tests.round_trips import CountedStores

LIMITS = Limits(hour=100, day=1000)


class Gateway(CountedStores):
    def __init__(self, azurite: Azurite) -> None:
        super().__init__(azurite.connection_string, prefix="t" + uuid.uuid4().hex[:10], limits=LIMITS)


def test_an_accepted_create_costs_three_round_trips_and_a_read_two(azurite: Azurite) -> None:
    gateway = Gateway(azurite)
    api_key = gateway.apps.create_app("Acme", "pro").api_key
    first = gateway.create(api_key)  # creates the tables, lets the quota store see its row
    gateway.read(api_key, first.id)

    creates = [gateway.trips_of(lambda: gateway.create(api_key)) for _ in range(5)]
    reads = [gateway.trips_of(lambda: gateway.read(api_key, first.id)) for _ in range(5)]

    assert creates == [3] * 5
    assert reads == [2] * 5


def test_a_plan_change_and_a_rotation_apply_to_the_very_next_request(azurite: Azurite) -> None:
    """Fewer round trips must not mean stale answers."""
    gateway = Gateway(azurite)
    created = gateway.apps.create_app("Acme", "pro")
    job = gateway.create(created.api_key)

    gateway.apps.set_plan(created.app.id, "business")
    assert gateway.trips_of(lambda: gateway.read(created.api_key, job.id)) == 2
    authenticated = gateway.apps.authenticate(created.api_key)
    assert authenticated is not None
    assert authenticated.plan == "business"

    rotated = gateway.apps.rotate_key(created.app.id)
    assert gateway.apps.authenticate(created.api_key) is None
    assert gateway.read(rotated.api_key, job.id).id == job.id


def test_a_create_after_another_process_admitted_stays_exact(azurite: Azurite) -> None:
    """The remembered quota state goes stale when another instance writes: that costs a retry
    (a refused write and a read), never a slot too many."""
    gateway = Gateway(azurite)
    created = gateway.apps.create_app("Acme", "pro")
    gateway.create(created.api_key)
    other_instance = QuotaStore(gateway.tables)
    assert other_instance.admit(created.app.id, LIMITS, "elsewhere", time.time()).admitted

    assert gateway.trips_of(lambda: gateway.create(created.api_key)) == 3 + 2
    assert gateway.quota.usage(created.app.id, LIMITS, time.time()).used["hour"] == 3
