"""The Durable Functions HTTP management API, as the library's DurableOrchestrationClient uses it.

The same handlers serve two listeners, as in the extension (HttpApiHandler): the public
/runtime/webhooks/durabletask routes on the host's port, which the host authorizes with a key
(devhost/guards.py), and the local RPC endpoint at http://127.0.0.1:<port>/durabletask/, the
client's rpcBaseUrl, which answers loopback callers without a key.

The URLs handed out follow the extension's BindingHelper and GetClientResponseLinks: the
webhook URL the host gives the extension carries `?code=<durabletask_extension system key>`, so
the management URLs end in `taskHub=...&connection=...&code=...`, the creation URLs and
`requiredQueryStringParameters` carry `code=...` alone.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any
from urllib.parse import quote

from aiohttp import web

from devhost.engine import Engine, InstanceExistsError, OperationResult, UnknownOrchestratorError
from devhost.history import TERMINAL_STATUSES, JsonDict, format_timestamp, parse_timestamp, status_history
from devhost.store import InstanceRecord

log = logging.getLogger("devhost.management")

WEBHOOK_PATH = "/runtime/webhooks/durabletask"
# LocalHttpListener.InternalRpcUri's path.
RPC_PATH = "/durabletask"
INSTANCE_PLACEHOLDER = "INSTANCEID"
# 404, 410 and 202 answers carry no body, like the extension's.
_EMPTY = b""


def _flag(request: web.Request, name: str, default: bool) -> bool:
    value = request.query.get(name)
    if value is None:
        return default
    return value.strip().lower() == "true"


def _with_code(query: str, code: str | None) -> str:
    """`query` followed by the system key, as the host's webhook URL gives it to the extension."""
    if code is None:
        return query
    key = f"code={quote(code, safe='')}"
    return f"{query}&{key}" if query else key


def management_urls(
    origin: str, task_hub: str, code: str | None, instance_id: str = INSTANCE_PLACEHOLDER
) -> dict[str, str]:
    base = f"{origin}{WEBHOOK_PATH}/instances/{instance_id}"
    query = _with_code(f"taskHub={quote(task_hub)}&connection=Storage", code)
    return {
        "id": instance_id,
        "statusQueryGetUri": f"{base}?{query}",
        "sendEventPostUri": f"{base}/raiseEvent/{{eventName}}?{query}",
        "terminatePostUri": f"{base}/terminate?reason={{text}}&{query}",
        "rewindPostUri": f"{base}/rewind?reason={{text}}&{query}",
        "purgeHistoryDeleteUri": f"{base}?{query}",
        "restartPostUri": f"{base}/restart?{query}",
        "suspendPostUri": f"{base}/suspend?reason={{text}}&{query}",
        "resumePostUri": f"{base}/resume?reason={{text}}&{query}",
    }


def client_binding(origin: str, rpc_origin: str, task_hub: str, code: str | None = None) -> str:
    """The durable client binding string the extension gives a durableClient parameter.

    `rpc_origin` is the local RPC listener's (DevHost.rpc_url). `code` is the
    durabletask_extension system key the public URLs carry; the rpcBaseUrl needs none."""
    required = _with_code("", code)
    create = f"{origin}{WEBHOOK_PATH}/orchestrators/{{functionName}}[/{{instanceId}}]"
    return json.dumps(
        {
            "taskHubName": task_hub,
            "creationUrls": {
                "createNewInstancePostUri": f"{create}?{required}".rstrip("?"),
                "createAndWaitOnNewInstancePostUri": (
                    f"{create}?timeout={{timeoutInSeconds}}&pollingInterval={{intervalInSeconds}}&{required}"
                ).rstrip("&"),
            },
            "managementUrls": management_urls(origin, task_hub, code),
            "baseUrl": f"{origin}{WEBHOOK_PATH}",
            "requiredQueryStringParameters": required,
            "rpcBaseUrl": f"{rpc_origin}{RPC_PATH}/",
        }
    )


def request_origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def instance_status(record: InstanceRecord, show_input: bool, history: list[JsonDict] | None) -> JsonDict:
    status: JsonDict = {
        "name": record.name,
        "instanceId": record.instance_id,
        "runtimeStatus": record.status,
        "input": record.input if show_input else None,
        "customStatus": record.custom_status,
        "output": record.output,
        "createdTime": record.created_time,
        "lastUpdatedTime": record.last_updated_time,
    }
    if history is not None:
        status["historyEvents"] = history
    return status


def _normalize_payload(raw: bytes) -> Any:
    """A request body as the JSON value it carries; None when empty."""
    if not raw.strip():
        return None
    return json.loads(raw)


def _as_json_text(text: str) -> str:
    """`text` when it already is JSON text, else the JSON string holding it."""
    try:
        json.loads(text)
    except ValueError:
        return json.dumps(text)
    return text


def event_input_text(value: Any) -> str:
    """EventRaised.Input holds JSON text. The library's client already sends JSON text (encoded
    twice); any other JSON body is serialized once here."""
    return _as_json_text(value) if isinstance(value, str) else json.dumps(value)


def orchestration_input(value: Any) -> Any:
    """The orchestration input as the extension stores it: the JSON value of the request body.

    The library's client sends the df_dumps text encoded again, so the value is that text and
    the orchestrator decodes it. A plain string that is not JSON text is wrapped so it still
    decodes to itself.
    """
    return _as_json_text(value) if isinstance(value, str) else value


class ManagementApi:
    def __init__(self, engine: Engine, task_hub: str, code: str) -> None:
        """`code`: the system key the URLs this API hands out carry."""
        self._engine = engine
        self._task_hub = task_hub
        self._code = code

    def add_routes(self, app: web.Application, base: str = WEBHOOK_PATH) -> None:
        app.router.add_post(f"{base}/orchestrators/{{name}}", self.start)
        app.router.add_post(f"{base}/orchestrators/{{name}}/{{instance_id}}", self.start)
        app.router.add_get(f"{base}/instances", self.list_instances)
        app.router.add_get(f"{base}/instances/", self.list_instances)
        app.router.add_delete(f"{base}/instances", self.purge_many)
        app.router.add_delete(f"{base}/instances/", self.purge_many)
        app.router.add_get(f"{base}/instances/{{instance_id}}", self.get_status)
        app.router.add_delete(f"{base}/instances/{{instance_id}}", self.purge_one)
        app.router.add_post(f"{base}/instances/{{instance_id}}/raiseEvent/{{event_name}}", self.raise_event)
        app.router.add_post(f"{base}/instances/{{instance_id}}/terminate", self.terminate)
        app.router.add_post(f"{base}/instances/{{instance_id}}/suspend", self.suspend)
        app.router.add_post(f"{base}/instances/{{instance_id}}/resume", self.resume)
        app.router.add_post(f"{base}/instances/{{instance_id}}/rewind", self.not_supported)
        app.router.add_post(f"{base}/instances/{{instance_id}}/restart", self.not_supported)

    @staticmethod
    def _bad_request(message: str) -> web.Response:
        body = {"Message": "One or more of the arguments submitted is incorrect", "ExceptionMessage": message}
        return web.json_response(body, status=400)

    async def start(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            value = orchestration_input(_normalize_payload(await request.read()))
        except ValueError:
            return self._bad_request("The request body is not valid JSON.")
        try:
            record = await self._engine.start_new(name, request.match_info.get("instance_id"), value)
        except (UnknownOrchestratorError, InstanceExistsError) as error:
            log.warning("start of orchestration %s refused: %s", name, error)
            return self._bad_request(str(error))
        timeout = request.query.get("timeout")
        if timeout is not None:
            return await self._wait_for_completion(request, record, timeout)
        return self._accepted(request, record.instance_id)

    def _accepted(self, request: web.Request, instance_id: str) -> web.Response:
        payload = management_urls(request_origin(request), self._task_hub, self._code, instance_id)
        headers = {"Location": payload["statusQueryGetUri"], "Retry-After": "10"}
        return web.json_response(payload, status=202, headers=headers)

    async def _wait_for_completion(
        self, request: web.Request, record: InstanceRecord, wait_seconds: str
    ) -> web.Response:
        """createAndWaitOnNewInstancePostUri: answer with the output if it finishes in time."""
        try:
            deadline = time.monotonic() + float(wait_seconds)
            interval = max(0.05, float(request.query.get("pollingInterval", "1")))
        except ValueError:
            return self._bad_request("timeout and pollingInterval must be numbers of seconds.")
        while time.monotonic() < deadline:
            current = self._engine.get_instance(record.instance_id)
            if current is not None and current.status in TERMINAL_STATUSES:
                return web.json_response(current.output, status=200)
            await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        return self._accepted(request, record.instance_id)

    async def get_status(self, request: web.Request) -> web.Response:
        record = self._engine.get_instance(request.match_info["instance_id"])
        if record is None:
            return web.Response(status=404, body=_EMPTY)
        history = None
        if _flag(request, "showHistory", False):
            events = self._engine.history(record.instance_id)
            history = status_history(events, _flag(request, "showHistoryOutput", False))
        body = instance_status(record, _flag(request, "showInput", True), history)
        if record.status in ("Running", "Pending", "ContinuedAsNew"):
            return web.json_response(
                body, status=202, headers={"Location": str(request.url), "Retry-After": "10"}
            )
        if record.status == "Failed" and _flag(request, "returnInternalServerErrorOnFailure", False):
            return web.json_response(body, status=500)
        return web.json_response(body, status=200)

    def _query(self, request: web.Request) -> list[InstanceRecord]:
        def moment(name: str) -> str | None:
            text = request.query.get(name)
            return format_timestamp(parse_timestamp(text)) if text else None

        statuses = [s for s in request.query.get("runtimeStatus", "").split(",") if s]
        return self._engine.query_instances(
            moment("createdTimeFrom"),
            moment("createdTimeTo"),
            statuses,
            request.query.get("instanceIdPrefix"),
        )

    async def list_instances(self, request: web.Request) -> web.Response:
        try:
            records = self._query(request)
        except ValueError:
            return self._bad_request("createdTimeFrom and createdTimeTo must be ISO-8601 timestamps.")
        show_input = _flag(request, "showInput", True)
        headers: dict[str, str] = {}
        top = request.query.get("top")
        if top and top.isdigit():
            # The continuation token is an offset into the stable creation-time order.
            start = int(request.headers.get("x-ms-continuation-token", "0") or "0")
            end = start + int(top)
            if end < len(records):
                headers["x-ms-continuation-token"] = str(end)
            records = records[start:end]
        return web.json_response([instance_status(r, show_input, None) for r in records], headers=headers)

    async def purge_one(self, request: web.Request) -> web.Response:
        deleted = await self._engine.purge([request.match_info["instance_id"]])
        if not deleted:
            return web.Response(status=404, body=_EMPTY)
        log.info("purged instance %s", request.match_info["instance_id"])
        return web.json_response({"instancesDeleted": deleted})

    async def purge_many(self, request: web.Request) -> web.Response:
        try:
            records = self._query(request)
        except ValueError:
            return self._bad_request("createdTimeFrom and createdTimeTo must be ISO-8601 timestamps.")
        deleted = await self._engine.purge([r.instance_id for r in records])
        if not deleted:
            return web.Response(status=404, body=_EMPTY)
        log.info("purged %d instances", deleted)
        return web.json_response({"instancesDeleted": deleted})

    @staticmethod
    def _answer(result: OperationResult) -> web.Response:
        if not result.found:
            return web.Response(status=404, body=_EMPTY)
        return web.Response(status=202 if result.accepted else 410, body=_EMPTY)

    async def raise_event(self, request: web.Request) -> web.Response:
        try:
            event_input = event_input_text(_normalize_payload(await request.read()))
        except ValueError:
            return self._bad_request("Only application/json request content is supported")
        result = self._engine.raise_event(
            request.match_info["instance_id"], request.match_info["event_name"], event_input
        )
        return self._answer(result)

    async def terminate(self, request: web.Request) -> web.Response:
        reason = request.query.get("reason", "")
        return self._answer(await self._engine.terminate(request.match_info["instance_id"], reason))

    async def suspend(self, request: web.Request) -> web.Response:
        reason = request.query.get("reason", "")
        return self._answer(await self._engine.suspend(request.match_info["instance_id"], reason))

    async def resume(self, request: web.Request) -> web.Response:
        reason = request.query.get("reason", "")
        return self._answer(await self._engine.resume_instance(request.match_info["instance_id"], reason))

    async def not_supported(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"Message": "This operation is not supported by the durable dev host."}, status=501
        )
