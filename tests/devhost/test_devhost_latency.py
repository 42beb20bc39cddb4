"""Activity latency like Azure's: work items and results cross Storage queues there, so an event
raised while an activity is on its way is seen by the orchestrator before the activity's result."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df
import azure.functions as func

from tests.devhost.devhost_testkit import Api, StartHost, add_client_routes

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
add_client_routes(app)


@app.activity_trigger(input_name="value")
def quick(value: str) -> str:
    return f"done {value}"


@app.orchestration_trigger(context_name="context")
def race(context: df.DurableOrchestrationContext) -> Any:
    work = context.call_activity("quick", "now")
    cancel = context.wait_for_external_event("cancel")
    winner = yield context.task_any([work, cancel])
    return "cancel" if winner == cancel else winner.result


def test_an_event_raised_while_an_activity_is_in_flight_wins_the_race(start_host: StartHost) -> None:
    host = start_host(app, activity_latency=0.5)
    api = Api(host.url)

    instance_id = api.start("race")
    api.raise_event(instance_id, "cancel")

    assert api.wait(instance_id)["output"] == "cancel"


def test_without_latency_the_same_activity_finishes_first(start_host: StartHost) -> None:
    host = start_host(app)
    api = Api(host.url)

    instance_id = api.start("race")
    finished = api.wait(instance_id)
    api.raise_event(instance_id, "cancel")

    assert finished["output"] == "done now"
