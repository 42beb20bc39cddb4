"""The host's side of the worker protocol, as plain Python messages.

Azure's Python runtime library (`azure-functions-runtime`) is handed the protocol's message
classes by whoever drives it (`protos` in its requests), and only ever builds messages with
keyword arguments, reads their fields and asks `WhichOneof`. In Azure that is the proxy worker's
generated protobuf module; here it is this small stand-in, so the runtime's own indexing and
binding conversion run unchanged without a copy of the protocol definition in this project.

What a protobuf message does that the runtime relies on, and these messages do too:
- unset fields (and fields given as None) read as their defaults (empty text, zero, an empty map
  or list, an empty message);
- `WhichOneof(group)` names the one field of a oneof group that was set, or None;
- enum values are plain ints, reached as class attributes (`BindingInfo.out`).
"""

from __future__ import annotations

from typing import Any, ClassVar


class Message:
    """A protobuf-like message: keyword fields in, attribute reads out, defaults for the rest."""

    # Field name -> default factory, for the fields the runtime may read without their being set.
    _defaults: ClassVar[dict[str, Any]] = {}
    # Oneof group -> its field names, in declaration order.
    _oneofs: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, **fields: Any) -> None:
        # As with protobuf, a field given as None is left unset (it reads as its default).
        given = {name: value for name, value in fields.items() if value is not None}
        self._set = set(given)
        for name, value in given.items():
            object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only called for fields never set: a known field reads as its default, as in protobuf,
        # and anything else is not a field at all (the runtime probes for that with try/except).
        factory = type(self)._defaults.get(name)
        if factory is None:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}")
        value = factory()
        object.__setattr__(self, name, value)
        return value

    def WhichOneof(self, group: str) -> str | None:
        return next((name for name in type(self)._oneofs.get(group, ()) if name in self._set), None)

    def HasField(self, name: str) -> bool:
        return name in self._set

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in sorted(self._set))
        return f"{type(self).__name__}({fields})"


class TypedData(Message):
    _oneofs: ClassVar[dict[str, tuple[str, ...]]] = {
        "data": (
            "string",
            "json",
            "bytes",
            "stream",
            "http",
            "int",
            "double",
            "collection_bytes",
            "collection_string",
            "collection_double",
            "collection_sint64",
            "model_binding_data",
            "collection_model_binding_data",
        )
    }


class RpcHttp(Message):
    _defaults: ClassVar[dict[str, Any]] = {
        "headers": dict,
        "params": dict,
        "query": dict,
        "body": TypedData,
        "cookies": list,
        "method": str,
        "url": str,
        "status_code": str,
    }


class ParameterBinding(Message):
    _oneofs: ClassVar[dict[str, tuple[str, ...]]] = {"rpc_data": ("data", "rpc_shared_memory")}


class BindingInfo(Message):
    # Direction (`in` is set below: it is a Python keyword)
    out = 1
    inout = 2
    # DataType
    undefined = 0
    string = 1
    binary = 2
    stream = 3


class StatusResult(Message):
    Failure = 0
    Success = 1
    Cancelled = 2


class RpcHttpCookie(Message):
    class SameSite:
        ExplicitNone = 3
        Lax = 1
        Strict = 2


# protobuf spells these enum values `in` and `None`, which Python only allows through setattr.
setattr(BindingInfo, "in", 0)
setattr(RpcHttpCookie.SameSite, "None", 0)


class RpcException(Message):
    _defaults: ClassVar[dict[str, Any]] = {"message": str, "stack_trace": str, "source": str}


class TraceContext(Message):
    _defaults: ClassVar[dict[str, Any]] = {"trace_parent": str, "trace_state": str, "attributes": dict}


class RetryContext(Message):
    _defaults: ClassVar[dict[str, Any]] = {
        "retry_count": int,
        "max_retry_count": int,
        "exception": RpcException,
    }


class InvocationRequest(Message):
    _defaults: ClassVar[dict[str, Any]] = {
        "invocation_id": str,
        "function_id": str,
        "input_data": list,
        "trigger_metadata": dict,
        "trace_context": TraceContext,
        "retry_context": RetryContext,
    }


class RpcFunctionMetadata(Message):
    _defaults: ClassVar[dict[str, Any]] = {"raw_bindings": list, "bindings": dict, "properties": dict}


class RpcRetryOptions(Message):
    pass


class NullableString(Message):
    pass


class NullableBool(Message):
    pass


class NullableDouble(Message):
    pass


class NullableTimestamp(Message):
    pass


class Timestamp(Message):
    """google.protobuf.Timestamp: whole seconds since the epoch are all the runtime sets."""

    _defaults: ClassVar[dict[str, Any]] = {"seconds": int, "nanos": int}
