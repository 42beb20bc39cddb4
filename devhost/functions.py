"""Indexing a function app and invoking its functions through Azure's Python runtime library.

Indexing is the runtime's own (`azure_functions_runtime.loader`, the code Azure runs for Python
3.13 apps): it imports `function_app.py` (or takes an app object), checks every function's
parameters, annotations and bindings as the worker does, and produces the raw bindings the host
reads. A function the worker would refuse stops the dev host with the worker's own message, as
one refused function stops the whole app in Azure.

Invocation goes through the runtime's binding converters: the host hands every argument over as
`TypedData`, as the Functions host does over gRPC, and the runtime decodes it into what the
function receives and encodes the return value back. Running the function (a thread or the
loop) is the host's job.

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
from pathlib import Path
from typing import Any

from azure_functions_runtime.bindings.context import get_context
from azure_functions_runtime.bindings.meta import (
    from_incoming_proto,
    is_trigger_binding,
    load_binding_registry,
    to_outgoing_proto,
)
from azure_functions_runtime.functions import FunctionInfo, Registry
from azure_functions_runtime.loader import index_function_app, process_indexed_function

from devhost import rpc
from devhost.workers import WorkerPool

TRIGGER_HTTP = "httpTrigger"
TRIGGER_ORCHESTRATION = "orchestrationTrigger"
TRIGGER_ACTIVITY = "activityTrigger"
TRIGGER_TIMER = "timerTrigger"
BINDING_DURABLE_CLIENT = "durableClient"


class AppIndexError(RuntimeError):
    """The worker refused the app (a function it cannot load): Azure would start none of it."""


@dataclass(frozen=True)
class IndexedFunction:
    name: str
    trigger_type: str
    trigger: Mapping[str, Any]
    bindings: tuple[Mapping[str, Any], ...]
    info: FunctionInfo  # the runtime's own record: parameters, types, return binding

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

    @property
    def all(self) -> list[IndexedFunction]:
        unique = {id(f): f for f in [*self.http, *self.orchestrators.values(), *self.activities.values()]}
        unique.update({id(f): f for f in [*self.timers, *self.unsupported]})
        return list(unique.values())


_INDEX_LOCK = threading.Lock()
# Keyed by the app object or the imported module; the key is kept so its id is never reused.
_INDEX_CACHE: dict[int, tuple[object, FunctionIndex]] = {}


def _functions_of(app_source: object | str) -> tuple[object, Callable[[], list[Any]], str]:
    """The cache key, a call that lists the app's functions, and the app's directory.

    A string names the script ("function_app.py", "function_app" or "function_app:app"): the
    runtime's loader imports it from sys.path and finds the one app object in it, as in Azure.
    """
    if isinstance(app_source, str):
        module_name = app_source.partition(":")[0].removesuffix(".py")
        module = importlib.import_module(module_name)
        directory = str(Path(str(module.__file__)).parent)
        return module, lambda: list(index_function_app(module_name + ".py")), directory
    # An app object (tests build them) has no script; its functions run from the current directory.
    return app_source, lambda: list(app_source.get_functions()), str(Path.cwd())  # type: ignore[attr-defined]


def index_app(app_source: object | str) -> FunctionIndex:
    """Index the app through the runtime's loader; AppIndexError when the worker refuses it."""
    with _INDEX_LOCK:
        try:
            key, list_functions, directory = _functions_of(app_source)
            cached = _INDEX_CACHE.get(id(key))
            if cached is not None and cached[0] is key:
                return cached[1]
            load_binding_registry()
            registry = Registry()
            metadata, _ = process_indexed_function(rpc, registry, list_functions(), directory)
        except Exception as error:  # the worker fails the whole index on any error
            raise AppIndexError(f"{type(error).__name__}: {error}") from error
        index = FunctionIndex()
        for function_metadata in metadata:
            info = registry.get_function(function_metadata.function_id)
            assert info is not None
            _add(index, _indexed(info, function_metadata))
        _INDEX_CACHE[id(key)] = (key, index)
        return index


def _indexed(info: FunctionInfo, metadata: rpc.RpcFunctionMetadata) -> IndexedFunction:
    bindings = tuple(json.loads(raw) for raw in metadata.raw_bindings)
    trigger = next((b for b in bindings if str(b.get("type", "")).endswith("Trigger")), None)
    if trigger is None:
        raise AppIndexError(f"function {info.name} has no trigger")
    return IndexedFunction(
        name=info.name, trigger_type=str(trigger["type"]), trigger=trigger, bindings=bindings, info=info
    )


def _add(index: FunctionIndex, indexed: IndexedFunction) -> None:
    # Durable functions are addressed by function name; a differing name given to the trigger
    # decorator is accepted as an alias.
    if indexed.trigger_type == TRIGGER_HTTP:
        index.http.append(indexed)
    elif indexed.trigger_type == TRIGGER_ORCHESTRATION:
        index.orchestrators[indexed.name] = indexed
        index.orchestrators.setdefault(str(indexed.trigger.get("orchestration") or indexed.name), indexed)
    elif indexed.trigger_type == TRIGGER_ACTIVITY:
        index.activities[indexed.name] = indexed
        index.activities.setdefault(str(indexed.trigger.get("activity") or indexed.name), indexed)
    elif indexed.trigger_type == TRIGGER_TIMER:
        index.timers.append(indexed)
    else:
        index.unsupported.append(indexed)


class Invoker:
    """Runs user functions: coroutines on the host loop, plain functions on a thread pool.

    Arguments arrive as `TypedData` and the result leaves as `TypedData`, converted by the
    runtime's binding converters exactly as in Azure. Results of thread-pool work reach the loop
    through call_soon_threadsafe; once the loop is closed (the host stopped) a late result is
    dropped, which is what abandoning work means.
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

    async def invoke(
        self, function: IndexedFunction, inputs: dict[str, rpc.TypedData]
    ) -> rpc.TypedData | None:
        """Call `function` with its trigger (and other input) data; None when it returns nothing.

        A durableClient parameter not given in `inputs` gets the host's client binding string.
        """
        info = function.info
        data = dict(inputs)
        client = function.durable_client_parameter
        if client is not None and client not in data and self._client_binding is not None:
            data[client] = rpc.TypedData(string=self._client_binding())
        request = rpc.InvocationRequest(
            invocation_id=str(uuid.uuid4()),
            function_id=info.function_id,
            input_data=[rpc.ParameterBinding(name=name, data=value) for name, value in data.items()],
        )
        arguments = {binding.name: self._decode(info, binding, request) for binding in request.input_data}
        if info.requires_context:
            arguments["context"] = get_context(request, info.name, info.directory)
        if info.is_async:
            result = await info.func(**arguments)
        else:
            result = await self.run_in_thread(lambda: info.func(**arguments))
            # A plain function may still hand back a coroutine (a decorator wrapping an async def).
            if inspect.isawaitable(result):
                result = await result
        if result is not None and not info.has_return:
            raise RuntimeError(f"function {info.name} without a $return binding returned a value")
        if info.return_type is None or isinstance(info.return_type, str):
            return None
        encoded: rpc.TypedData | None = to_outgoing_proto(
            info.return_type.binding_name, result, pytype=info.return_type.pytype, protos=rpc
        )
        return encoded

    @staticmethod
    def _decode(info: FunctionInfo, binding: rpc.ParameterBinding, request: rpc.InvocationRequest) -> Any:
        parameter = info.input_types[binding.name]
        trigger = is_trigger_binding(parameter.binding_name)
        return from_incoming_proto(
            parameter.binding_name,
            binding,
            pytype=parameter.pytype,
            trigger_metadata=request.trigger_metadata if trigger else None,
            function_name=info.name,
            is_deferred_binding=bool(parameter.deferred_bindings_enabled),
        )

    def run_in_thread[T](self, work: Callable[[], T]) -> asyncio.Future[T]:
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


def typed_value(data: rpc.TypedData | None) -> Any:
    """What a TypedData carries, as the host reads it (None when nothing is set)."""
    if data is None:
        return None
    kind = data.WhichOneof("data")
    return None if kind is None else getattr(data, kind)
