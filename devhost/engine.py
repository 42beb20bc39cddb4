"""The orchestration engine: episodes, activities and durable timers for every instance.

Each instance has at most one pump at a time, so its episodes run one after another, while
different instances progress in parallel. An episode takes a batch of undelivered events from
the store, replays the orchestrator with them, and commits the resulting history and pending
work in one transaction before any of that work starts.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from devhost.decider import Decision, EngineState, decide, triggers_retry_work
from devhost.functions import FunctionIndex, Invoker
from devhost.history import (
    TERMINAL_STATUSES,
    EventType,
    JsonDict,
    format_timestamp,
    new_event,
    parse_timestamp,
    utc_now,
)
from devhost.replay import ReplayOutcome, activity_failure, orchestration_context, replay, run_activity
from devhost.store import EpisodeWrite, InboxItem, InstanceRecord, PendingActivity, PendingTimer, Store

log = logging.getLogger("devhost.engine")
activity_log = logging.getLogger("devhost.activity")

# Bounds the replay work of one episode when many events are waiting.
MAX_EVENTS_PER_EPISODE = 200

_TimerKey = tuple[str, str, int]


class UnknownOrchestratorError(Exception):
    pass


class InstanceExistsError(Exception):
    pass


@dataclass(frozen=True)
class OperationResult:
    """Outcome of a management operation, named after the HTTP answer it maps to."""

    found: bool
    accepted: bool


NOT_FOUND = OperationResult(found=False, accepted=False)
GONE = OperationResult(found=True, accepted=False)
ACCEPTED = OperationResult(found=True, accepted=True)


def select_batch(state: EngineState, items: list[InboxItem]) -> list[InboxItem]:
    """Events for the next episode: at most one retry-triggering event, and only first.

    See devhost.decider for why: it keeps the host's task numbering in the library's order.
    """
    batch: list[InboxItem] = []
    for item in items[:MAX_EVENTS_PER_EPISODE]:
        if triggers_retry_work(state, item.event) and batch:
            break
        batch.append(item)
    return batch


class Engine:
    def __init__(
        self,
        store: Store,
        index: FunctionIndex,
        loop: asyncio.AbstractEventLoop,
        activity_invoker: Invoker,
        orchestrator_invoker: Invoker,
        activity_latency: float = 0.0,
    ) -> None:
        self._store = store
        self._activity_latency = activity_latency
        self._index = index
        self._loop = loop
        self._activities = activity_invoker
        self._orchestrators = orchestrator_invoker
        self._closing = False
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._pumps: dict[str, asyncio.Task[None]] = {}
        self._rewake: set[str] = set()
        self._activity_tasks: set[asyncio.Task[None]] = set()
        self._timer_handles: dict[_TimerKey, asyncio.TimerHandle] = {}

    # ---- lifecycle -------------------------------------------------------------------------

    def resume(self) -> None:
        """Pick up where a previous host on the same store stopped."""
        timers = self._store.pending_timers()
        activities = self._store.pending_activities()
        waiting = self._store.instances_with_inbox()
        if timers or activities or waiting:
            log.info(
                "resuming: %d durable timers, %d activities to re-run, %d instances with events",
                len(timers),
                len(activities),
                len(waiting),
            )
        for timer in timers:
            self._arm_timer(timer)
        for activity in activities:
            self._start_activity(activity)
        for instance_id in waiting:
            self.wake(instance_id)

    async def close(self) -> None:
        """Stop everything; unfinished work stays in the store and re-runs on the next start."""
        self._closing = True
        for handle in self._timer_handles.values():
            handle.cancel()
        self._timer_handles.clear()
        tasks = [*self._pumps.values(), *self._activity_tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---- management operations -------------------------------------------------------------

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        return self._store.get_instance(instance_id)

    def history(self, instance_id: str) -> list[JsonDict]:
        return self._store.load_history(instance_id)

    def query_instances(
        self, created_from: str | None, created_to: str | None, statuses: list[str], prefix: str | None
    ) -> list[InstanceRecord]:
        return self._store.query_instances(created_from, created_to, statuses, prefix)

    async def start_new(self, name: str, instance_id: str | None, orchestration_input: Any) -> InstanceRecord:
        if name not in self._index.orchestrators:
            raise UnknownOrchestratorError(
                f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator function."
            )
        instance_id = instance_id or uuid.uuid4().hex
        async with self._locks[instance_id]:
            existing = self._store.get_instance(instance_id)
            if existing is not None and existing.status not in TERMINAL_STATUSES:
                raise InstanceExistsError(
                    f"An Orchestration instance with the status {existing.status} already exists."
                )
            self._cancel_instance_timers(instance_id)
            now = format_timestamp(utc_now())
            record = InstanceRecord(
                instance_id=instance_id,
                name=name,
                execution_id=uuid.uuid4().hex,
                status="Pending",
                input=orchestration_input,
                output=None,
                custom_status=None,
                created_time=now,
                last_updated_time=now,
                engine_state=EngineState().to_json(),
            )
            self._store.create_instance(record, self._execution_started(record, now))
        log.info("started orchestration %s instance %s", name, instance_id)
        self.wake(instance_id)
        return record

    @staticmethod
    def _execution_started(record: InstanceRecord, timestamp: str) -> JsonDict:
        return new_event(
            EventType.EXECUTION_STARTED,
            timestamp,
            Name=record.name,
            Input=record.input,
            Version="",
            OrchestrationInstance={"InstanceId": record.instance_id, "ExecutionId": record.execution_id},
        )

    def _live_record(self, instance_id: str) -> InstanceRecord | OperationResult:
        """The instance's record, or the answer for one that is unknown (404) or finished (410)."""
        record = self._store.get_instance(instance_id)
        if record is None:
            return NOT_FOUND
        if record.status in TERMINAL_STATUSES:
            return GONE
        return record

    def raise_event(self, instance_id: str, event_name: str, event_input: str) -> OperationResult:
        record = self._live_record(instance_id)
        if not isinstance(record, InstanceRecord):
            return record
        event = new_event(
            EventType.EVENT_RAISED, format_timestamp(utc_now()), Name=event_name, Input=event_input
        )
        # External events belong to the instance, not to one execution (see continue-as-new).
        self._store.enqueue(instance_id, None, event)
        log.info("event %s raised for instance %s", event_name, instance_id)
        self.wake(instance_id)
        return ACCEPTED

    async def terminate(self, instance_id: str, reason: str) -> OperationResult:
        async with self._locks[instance_id]:
            record = self._live_record(instance_id)
            if not isinstance(record, InstanceRecord):
                return record
            now = format_timestamp(utc_now())
            record.status = "Terminated"
            record.output = reason
            record.last_updated_time = now
            self._store.finish_instance(
                record, [new_event(EventType.EXECUTION_TERMINATED, now, Input=reason)]
            )
            self._cancel_instance_timers(instance_id)
        log.info("terminated instance %s", instance_id)
        return ACCEPTED

    async def suspend(self, instance_id: str, reason: str) -> OperationResult:
        return await self._set_suspended(instance_id, True, reason)

    async def resume_instance(self, instance_id: str, reason: str) -> OperationResult:
        result = await self._set_suspended(instance_id, False, reason)
        self.wake(instance_id)
        return result

    async def _set_suspended(self, instance_id: str, suspended: bool, reason: str) -> OperationResult:
        async with self._locks[instance_id]:
            record = self._live_record(instance_id)
            if not isinstance(record, InstanceRecord):
                return record
            if (record.status == "Suspended") != suspended:
                now = format_timestamp(utc_now())
                record.status = "Suspended" if suspended else "Running"
                record.last_updated_time = now
                kind = EventType.EXECUTION_SUSPENDED if suspended else EventType.EXECUTION_RESUMED
                self._store.update_instance(record, [new_event(kind, now, Reason=reason)])
        return ACCEPTED

    async def purge(self, instance_ids: list[str]) -> int:
        deleted = 0
        for instance_id in instance_ids:
            async with self._locks[instance_id]:
                deleted += self._store.purge([instance_id])
                self._cancel_instance_timers(instance_id)
        return deleted

    # ---- episodes --------------------------------------------------------------------------

    def wake(self, instance_id: str) -> None:
        if self._closing:
            return
        if instance_id in self._pumps:
            self._rewake.add(instance_id)
            return
        self._pumps[instance_id] = self._loop.create_task(self._pump(instance_id))

    async def _pump(self, instance_id: str) -> None:
        try:
            while not self._closing:
                self._rewake.discard(instance_id)
                progressed = await self._run_episode(instance_id)
                if not progressed and instance_id not in self._rewake:
                    break
        except Exception:
            log.exception("episode of instance %s failed inside the dev host", instance_id)
        finally:
            self._pumps.pop(instance_id, None)

    async def _run_episode(self, instance_id: str) -> bool:
        async with self._locks[instance_id]:
            record = self._store.get_instance(instance_id)
            if record is None or record.status == "Suspended":
                return False
            items = self._store.inbox(instance_id)
            current = [item for item in items if item.execution_id in (None, record.execution_id)]
            stale = [item.seq for item in items if item.execution_id not in (None, record.execution_id)]
            if record.status in TERMINAL_STATUSES:
                stale += [item.seq for item in current]
                current = []
            if stale:
                self._store.drop_inbox(stale)
            if not current:
                return False
            state = EngineState.from_json(record.engine_state)
            batch = select_batch(state, current)
            old_events = self._store.load_history(instance_id)
            now = utc_now()
            new_events = [new_event(EventType.ORCHESTRATOR_STARTED, format_timestamp(now))]
            new_events += [item.event for item in batch]
            started = time.monotonic()
            outcome = await self._replay(record, old_events, new_events)
            if self._closing:
                return False
            error = (
                f"Orchestrator function '{record.name}' failed: {outcome.error}" if outcome.error else None
            )
            decision = decide(state, [item.event for item in batch], outcome.state, error, now)
            self._commit(record, state, batch, new_events, decision, now)
            log.info(
                "orchestrator %s instance %s: %s (%d new events, %d ms)",
                record.name,
                instance_id,
                decision.status,
                len(batch),
                (time.monotonic() - started) * 1000,
            )
            return True

    async def _replay(
        self, record: InstanceRecord, old_events: list[JsonDict], new_events: list[JsonDict]
    ) -> ReplayOutcome:
        function = self._index.orchestrators.get(record.name)
        if function is None:
            return ReplayOutcome(None, f"The function '{record.name}' is not an orchestrator of this app.")
        context = orchestration_context(record.instance_id, record.input, old_events, new_events)
        return await replay(self._orchestrators, function, context)

    def _commit(
        self,
        record: InstanceRecord,
        state: EngineState,
        batch: list[InboxItem],
        new_events: list[JsonDict],
        decision: Decision,
        now: dt.datetime,
    ) -> None:
        timestamp = format_timestamp(now)
        history = [*new_events, *decision.events, new_event(EventType.ORCHESTRATOR_COMPLETED, timestamp)]
        instance_id = record.instance_id
        record.last_updated_time = timestamp
        record.custom_status = decision.custom_status
        record.status = decision.status
        next_start: JsonDict | None = None
        if decision.finished:
            record.output = decision.output
        if decision.status == "ContinuedAsNew":
            record.execution_id = uuid.uuid4().hex
            record.input = decision.continue_input
            record.engine_state = EngineState().to_json()
            next_start = self._execution_started(record, timestamp)
        else:
            record.engine_state = state.to_json()
        activities = [
            PendingActivity(instance_id, record.execution_id, work.task_id, work.name, work.input)
            for work in decision.activities
        ]
        timers = [
            PendingTimer(instance_id, record.execution_id, work.timer_id, work.fire_at)
            for work in decision.timers
        ]
        write = EpisodeWrite(
            instance=record,
            new_history=history,
            consumed_inbox=[item.seq for item in batch],
            activities=[] if next_start else activities,
            timers=[] if next_start else timers,
            cancelled_timers=decision.cancelled_timers,
            finished=decision.finished,
            restart_history=next_start is not None,
            next_execution_start=next_start,
        )
        self._store.commit_episode(write)
        if decision.finished or next_start is not None:
            self._cancel_instance_timers(instance_id)
            if next_start is not None:
                self.wake(instance_id)
            return
        for timer_id in decision.cancelled_timers:
            handle = self._timer_handles.pop((instance_id, record.execution_id, timer_id), None)
            if handle is not None:
                handle.cancel()
        for activity in activities:
            self._start_activity(activity)
        for timer in timers:
            self._arm_timer(timer)

    # ---- activities ------------------------------------------------------------------------

    def _start_activity(self, activity: PendingActivity) -> None:
        task = self._loop.create_task(self._run_activity(activity))
        self._activity_tasks.add(task)
        task.add_done_callback(self._activity_tasks.discard)

    async def _run_activity(self, activity: PendingActivity) -> None:
        function = self._index.activities.get(activity.name)
        started = time.monotonic()
        activity_log.debug(
            "activity %s (instance %s, task %d) started",
            activity.name,
            activity.instance_id,
            activity.task_id,
        )
        failure: BaseException | None = None
        try:
            if function is None:
                raise LookupError(
                    f"The function '{activity.name}' doesn't exist, is disabled, "
                    "or is not an activity function."
                )
            # In Azure the work item and its result each cross a Storage queue; the delay lets an
            # event (a cancel) arrive while the activity is still on its way or running.
            await asyncio.sleep(self._activity_latency)
            result = await run_activity(self._activities, function, activity.input)
            outcome = new_event(
                EventType.TASK_COMPLETED,
                format_timestamp(utc_now()),
                TaskScheduledId=activity.task_id,
                Result=result,
            )
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # an activity's failure must never take the host down
            failure = error
            reason, details = activity_failure(activity.name, error)
            outcome = new_event(
                EventType.TASK_FAILED,
                format_timestamp(utc_now()),
                TaskScheduledId=activity.task_id,
                Reason=reason,
                Details=details,
            )
        await asyncio.sleep(self._activity_latency)
        if self._closing:
            return
        activity_log.log(
            logging.WARNING if failure else logging.INFO,
            "activity %s (instance %s, task %d): %s (%d ms)",
            activity.name,
            activity.instance_id,
            activity.task_id,
            "Failed" if failure else "Succeeded",
            (time.monotonic() - started) * 1000,
            exc_info=failure,
        )
        if self._store.complete_activity(activity, outcome):
            self.wake(activity.instance_id)

    # ---- durable timers --------------------------------------------------------------------

    def _arm_timer(self, timer: PendingTimer) -> None:
        if self._closing:
            return
        delay = (parse_timestamp(timer.fire_at) - utc_now()).total_seconds()
        key = (timer.instance_id, timer.execution_id, timer.timer_id)
        self._timer_handles[key] = self._loop.call_later(max(0.0, delay), self._fire_timer, timer)

    def _fire_timer(self, timer: PendingTimer) -> None:
        key = (timer.instance_id, timer.execution_id, timer.timer_id)
        self._timer_handles.pop(key, None)
        if self._closing:
            return
        if parse_timestamp(timer.fire_at) > utc_now():
            # The loop's monotonic clock can run slightly ahead of the wall clock.
            self._arm_timer(timer)
            return
        fired = new_event(
            EventType.TIMER_FIRED, format_timestamp(utc_now()), TimerId=timer.timer_id, FireAt=timer.fire_at
        )
        if self._store.fire_timer(timer, fired):
            self.wake(timer.instance_id)

    def _cancel_instance_timers(self, instance_id: str) -> None:
        for key in [key for key in self._timer_handles if key[0] == instance_id]:
            self._timer_handles.pop(key).cancel()
