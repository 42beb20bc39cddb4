"""The durable management API is authorized by the host's keys, as in Azure.

Facts relied on (Azure/azure-functions-host, Azure/azure-functions-durable-extension):

- HostController routes `runtime/webhooks/{extensionName}/{*extra}` under the policy
  `AuthLevelSystemKey`: the system key `{extensionName}_extension` (here durabletask_extension)
  or an admin-level key (the master key) passes; anything else fails authentication: 401.
- AuthenticationLevelHandler reads the key from the `x-functions-key` header, else from the
  `code` query parameter: the header wins when both are present.
- DefaultScriptWebHookProvider gives the extension `https://{host}/runtime/webhooks/{name}?code={system key}`,
  and HttpApiHandler.GetClientResponseLinks appends that query to every management URL after
  `taskHub=...&connection=...`, so statusQueryGetUri works as handed out.
- The extension's LocalHttpListener (the durable client's rpcBaseUrl) is its own Kestrel
  listener on 127.0.0.1 at `/durabletask/` that runs the same handler with no authorization.
- Keys are generated on the host's first start and kept (secrets storage), so they outlive restarts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import azure.durable_functions as df
import azure.functions as func
import pytest
import requests

from devhost.host import DevHost
from devhost.keys import HostKeys, presented_key
from devhost.management import WEBHOOK_PATH
from tests.devhost.devhost_testkit import Api, StartHost, add_client_routes, keyed
from tests.devhost.raw_http import status_after_headers

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
add_client_routes(app)


@app.orchestration_trigger(context_name="context")
def hello(context: df.DurableOrchestrationContext) -> Any:
    return f"hello {context.get_input()}"


@app.route(route="binding")
@app.durable_client_input(client_name="client")
async def binding(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """What the client was built from: the binding string the host handed over."""
    bindings = client._orchestration_bindings
    seen = {
        "rpcBaseUrl": bindings.rpc_base_url,
        "creationUrls": bindings.creation_urls,
        "managementUrls": bindings.management_urls,
        "client_data": vars(bindings.client_data),
    }
    return func.HttpResponse(json.dumps(seen, default=str), mimetype="application/json")


def _instances(host: DevHost, **kwargs: Any) -> requests.Response:
    return requests.get(f"{host.url}{WEBHOOK_PATH}/instances", timeout=10, **kwargs)


def test_no_key_or_a_wrong_key_is_refused_401_without_a_body(start_host: StartHost) -> None:
    host = start_host(app)
    Api(host.url).wait(Api(host.url).start("hello", "someone"))
    for attempt in (
        _instances(host),
        _instances(host, params={"code": "wrong"}),
        _instances(host, headers={"x-functions-key": "wrong"}),
        _instances(host, params={"code": ""}),
        requests.post(f"{host.url}{WEBHOOK_PATH}/orchestrators/hello", json="x", timeout=10),
        requests.delete(f"{host.url}{WEBHOOK_PATH}/instances", timeout=10),
    ):
        assert attempt.status_code == 401
        assert attempt.content == b""  # nothing about any instance leaks


def test_the_master_key_and_the_durable_system_key_both_authorize(start_host: StartHost) -> None:
    host = start_host(app)
    instance_id = Api(host.url).start("hello", "Ada")
    Api(host.url).wait(instance_id)
    assert host.master_key != host.durable_key
    for key in (host.master_key, host.durable_key):
        by_header = _instances(host, headers={"x-functions-key": key})
        by_query = _instances(host, params={"code": key})
        assert by_header.status_code == by_query.status_code == 200
        assert [s["instanceId"] for s in by_header.json()] == [instance_id]


def test_the_header_wins_over_the_query_parameter(start_host: StartHost) -> None:
    host = start_host(app)
    right, wrong = host.master_key, "wrong"
    assert _instances(host, headers={"x-functions-key": right}, params={"code": wrong}).status_code == 200
    assert _instances(host, headers={"x-functions-key": wrong}, params={"code": right}).status_code == 401
    assert presented_key({"x-functions-key": ""}, {"code": right}) == ""


def test_the_path_is_guarded_whatever_its_case(start_host: StartHost) -> None:
    host = start_host(app)
    response = requests.get(f"{host.url}/Runtime/WebHooks/DurableTask/instances", timeout=10)
    assert response.status_code == 401


def test_check_status_urls_carry_the_system_key_and_work_as_handed_out(start_host: StartHost) -> None:
    host = start_host(app)
    started = requests.post(f"{host.url}/api/orchestrators/hello", json="Bo", timeout=10)
    payload = started.json()
    Api(host.url).wait(payload["id"])
    for name in ("statusQueryGetUri", "sendEventPostUri", "terminatePostUri", "purgeHistoryDeleteUri"):
        query = parse_qs(urlsplit(payload[name]).query)
        assert query["code"] == [host.durable_key], name
        assert query["connection"] == ["Storage"], name
        assert "taskHub" in query, name
    status = requests.get(payload["statusQueryGetUri"], timeout=10)
    assert status.status_code == 200
    assert status.json()["output"] == "hello Bo"
    # The management API's own 202 answers hand out keyed URLs too.
    direct = keyed(host.master_key).post(
        f"{host.url}{WEBHOOK_PATH}/orchestrators/hello", json="Cy", timeout=10
    )
    assert parse_qs(urlsplit(direct.headers["Location"]).query)["code"] == [host.durable_key]


def test_the_binding_points_the_client_at_a_keyless_loopback_rpc_listener(start_host: StartHost) -> None:
    host = start_host(app)
    binding = json.loads(requests.get(f"{host.url}/api/binding", timeout=10).text)
    extra = json.dumps(binding["client_data"])
    assert f'"requiredQueryStringParameters": "code={host.durable_key}"' in extra
    assert f'"baseUrl": "{host.url}{WEBHOOK_PATH}"' in extra
    assert binding["creationUrls"]["createNewInstancePostUri"].endswith(f"?code={host.durable_key}")
    rpc = urlsplit(binding["rpcBaseUrl"])
    assert (rpc.hostname, rpc.path) == ("127.0.0.1", "/durabletask/")
    assert rpc.port != urlsplit(host.url).port
    # The client calls it without a key, as the library does.
    assert requests.get(f"{binding['rpcBaseUrl']}instances", timeout=10).status_code == 200
    # The keyless path is not served on the host's public port.
    assert requests.get(f"{host.url}/durabletask/instances", timeout=10).status_code == 404


def test_an_unauthorized_caller_is_refused_before_its_body_is_read(start_host: StartHost) -> None:
    host = start_host(app)
    # 50 MB declared and none sent: the answer comes at once, so nothing waited for the body.
    headers = {"Content-Length": str(50 * 1024 * 1024), "Content-Type": "application/json"}
    assert status_after_headers(f"{host.url}{WEBHOOK_PATH}/orchestrators/hello", "POST", headers) == 401


def test_generated_keys_outlive_a_restart_and_a_configured_master_key_wins(
    start_host: StartHost, tmp_path: Path
) -> None:
    state = tmp_path / "keys"
    first = start_host(app, state_dir=state)
    master, durable = first.master_key, first.durable_key
    first.stop()
    second = start_host(app, state_dir=state)
    assert (second.master_key, second.durable_key) == (master, durable)
    second.stop()
    third = start_host(app, state_dir=state, master_key="configured-master-key")
    assert third.master_key == "configured-master-key"
    assert third.durable_key == durable
    assert _instances(third, params={"code": "configured-master-key"}).status_code == 200
    assert _instances(third, params={"code": master}).status_code == 401


def test_kept_keys_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    HostKeys.load_or_create(tmp_path)
    assert (tmp_path / "secrets" / "host.json").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("presented", [None, "", "nearly-the-master-key"])
def test_only_the_exact_keys_authorize(presented: str | None, tmp_path: Path) -> None:
    keys = HostKeys.load_or_create(tmp_path, master_key="nearly-the-master-key-")
    assert not keys.authorizes_extension(presented, "durabletask")
    assert keys.authorizes_extension(keys.extension_key("durabletask"), "durabletask")
    assert not keys.authorizes_extension(keys.extension_key("durabletask"), "otherextension")
