"""Indexing a function app and invoking its functions the way the Python worker does.

`FunctionApp.get_functions()` builds the functions and may run only once per app object, so the
index is cached per app: a second host on the same app (a restart in one process) reuses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import azure.functions as func
from azure.functions import _abc as functions_abc

from devhost.workers import WorkerPool

TRIGGER_HTTP = "httpTrigger"
TRIGGER_ORCHESTRATION = "orchestrationTrigger"
TRIGGER_ACTIVITY = "activityTrigger"
TRIGGER_TIMER = "timerTrigger"
BINDING_DURABLE_CLIENT = "durableClient"

T = TypeVar("T")

# The worker passes a `context` argument to functions that declare one.
CONTEXT_PARAMETER = "context"


@dataclass(frozen=True)
class IndexedFunction:
    name: str
    trigger_type: str
    trigger: Mapping[str, Any]
    bindings: tuple[Mapping[str, Any], ...]
    call: Callable[..., Any]
    is_async: bool
    wants_context: bool

    @property
    def trigger_parameter(self) -> str:
        return str(self.trigger["name"])

    def binding_of_type(self, binding_type: str) -> Mapping[str, Any] | None:
        return next((b for b in self.bindings if b.get("type") == binding_type), None)

    @property
    def durable_client_parameter(self) -> str | None:
        binding = self.binding_of_type(BINDING_DURABLE_CLIENT)
        return None if binding is None else str(binding["name"])


@dataclass
class FunctionIndex:
    http: list[IndexedFunction] = field(default_factory=list)
    orchestrators: dict[str, IndexedFunction] = field(default_factory=dict)
    activities: dict[str, IndexedFunction] = field(default_factory=dict)
    timers: list[IndexedFunction] = field(default_factory=list)
    unsupported: list[IndexedFunction] = field(default_factory=list)


_INDEX_LOCK = threading.Lock()
# Keyed by id(); the app object is kept alongside so the id cannot be reused while cached.
_INDEX_CACHE: dict[int, tuple[object, FunctionIndex]] = {}


def load_app(app: object | str) -> object:
    """Accept an app object or an import string such as "function_app:app"."""
    if not isinstance(app, str):
        return app
    module_name, _, attribute = app.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute or "app")


def _index_one(function: Any) -> IndexedFunction:
    bindings = tuple(json.loads(raw) for raw in function.get_raw_bindings())
    trigger = next((b for b in bindings if str(b.get("type", "")).endswith("Trigger")), None)
    if trigger is None:
        raise ValueError(f"function {function.get_function_name()} has no trigger")
    call = function.get_user_function()
    parameters: Mapping[str, inspect.Parameter]
    try:
        parameters = inspect.signature(call).parameters
    except (TypeError, ValueError):
        parameters = {}
    binding_names = {b.get("name") for b in bindings}
    return IndexedFunction(
        name=str(function.get_function_name()),
        trigger_type=str(trigger["type"]),
        trigger=trigger,
        bindings=bindings,
        call=call,
        is_async=inspect.iscoroutinefunction(call),
        wants_context=CONTEXT_PARAMETER in parameters and CONTEXT_PARAMETER not in binding_names,
    )


def index_app(app: object) -> FunctionIndex:
    with _INDEX_LOCK:
        cached = _INDEX_CACHE.get(id(app))
        if cached is not None and cached[0] is app:
            return cached[1]
        index = FunctionIndex()
        for function in app.get_functions():  # type: ignore[attr-defined]
            indexed = _index_one(function)
            # Durable functions are addressed by function name; a differing name given to the
            # trigger decorator is accepted as an alias.
            if indexed.trigger_type == TRIGGER_HTTP:
                index.http.append(indexed)
            elif indexed.trigger_type == TRIGGER_ORCHESTRATION:
                index.orchestrators[indexed.name] = indexed
                index.orchestrators.setdefault(
                    str(indexed.trigger.get("orchestration") or indexed.name), indexed
                )
            elif indexed.trigger_type == TRIGGER_ACTIVITY:
                index.activities[indexed.name] = indexed
                index.activities.setdefault(str(indexed.trigger.get("activity") or indexed.name), indexed)
            elif indexed.trigger_type == TRIGGER_TIMER:
                index.timers.append(indexed)
            else:
                index.unsupported.append(indexed)
        _INDEX_CACHE[id(app)] = (app, index)
        return index


class _TraceContext(functions_abc.TraceContext):
    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return ""

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _RetryContext(functions_abc.RetryContext):
    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> Any:
        return None


class InvocationContext(func.Context):
    """The `context` argument the worker passes to functions that ask for it."""

    _locals = threading.local()

    def __init__(self, function_name: str) -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> threading.local:  # type: ignore[override]
        return self._locals

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return ""

    @property
    def trace_context(self) -> functions_abc.TraceContext:
        return _TraceContext()

    @property
    def retry_context(self) -> functions_abc.RetryContext:
        return _RetryContext()


class Invoker:
    """Runs user functions: coroutines on the host loop, plain functions on a thread pool.

    Results of thread-pool work reach the loop through call_soon_threadsafe; once the loop is
    closed (the host stopped) a late result is dropped, which is what abandoning work means.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        pool: WorkerPool,
        client_binding: Callable[[], str] | None = None,
    ) -> None:
        self._loop = loop
        self._pool = pool
        self._client_binding = client_binding

    async def invoke(self, function: IndexedFunction, kwargs: dict[str, Any]) -> Any:
        """Call `function` with its trigger argument(s) in `kwargs`.

        A durableClient parameter not given in `kwargs` gets the host's client binding string.
        """
        arguments = dict(kwargs)
        client = function.durable_client_parameter
        if client is not None and client not in arguments and self._client_binding is not None:
            arguments[client] = self._client_binding()
        if function.wants_context:
            arguments[CONTEXT_PARAMETER] = InvocationContext(function.name)
        if function.is_async:
            return await function.call(**arguments)
        result = await self.run_in_thread(lambda: function.call(**arguments))
        # A plain function may still hand back a coroutine (a decorator wrapping an async def).
        return await result if inspect.isawaitable(result) else result

    def run_in_thread(self, work: Callable[[], T]) -> asyncio.Future[T]:
        future: asyncio.Future[T] = self._loop.create_future()

        def deliver(outcome: tuple[bool, Any]) -> None:
            if future.done():
                return
            succeeded, value = outcome
            if succeeded:
                future.set_result(value)
            else:
                future.set_exception(value)

        def run() -> None:
            outcome: tuple[bool, Any]
            try:
                outcome = (True, work())
            except BaseException as error:
                outcome = (False, error)
            # A closed loop means the host stopped and abandoned this work.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(deliver, outcome)

        self._pool.submit(run)
        return future
