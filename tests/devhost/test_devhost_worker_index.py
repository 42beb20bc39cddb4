"""The dev host indexes apps with Azure's own Python runtime (azure-functions-runtime) and refuses
to start, with the worker's message, whatever the worker would refuse in Azure.

Facts relied on (azure-functions-runtime 1.3, the library Azure runs for Python 3.13 apps):
- any load error fails the whole index: no function of the app starts;
- a binding parameter annotated with something that is not a class (`dict[str, Any]` on Python
  3.11+) is refused with "binding <name> has invalid non-type annotation ...";
- the Durable library wraps an orchestrator in a handle whose parameter is called `context`, so an
  orchestration trigger declared with another `context_name` is refused by the worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import pytest

from devhost.functions import AppIndexError, index_app
from devhost.host import DevHost
from tests.conftest import PROJECT_DIR

MIS_ANNOTATED_APP = """
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="ping")
def ping(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("pong")


@app.activity_trigger(input_name="payload")
def mis_annotated(payload: dict[str, Any]) -> None:
    return None
"""

WORKER_MESSAGE = "cannot load the mis_annotated function: binding payload has invalid non-type annotation"


def _write_app(directory: Path, module: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / f"{module}.py"
    script.write_text(textwrap.dedent(MIS_ANNOTATED_APP))
    return script


def test_the_real_app_indexes_with_every_function() -> None:
    index = index_app("function_app.py")
    names = {function.name for function in index.all}
    assert {"generate_video", "create_upstream_job", "store_video_assets", "create_video"} <= names
    assert not index.unsupported


def test_a_mis_annotated_activity_stops_the_dev_host_with_the_workers_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_app(tmp_path / "app", "mis_annotated_app")
    monkeypatch.syspath_prepend(str(tmp_path / "app"))
    host = DevHost("mis_annotated_app.py", state_dir=tmp_path / "state")
    with pytest.raises(AppIndexError, match=WORKER_MESSAGE):
        host.start()


def test_python_m_devhost_refuses_to_start_and_prints_the_function_and_message(tmp_path: Path) -> None:
    """The whole stack's entry point: it exits before starting Azurite or the simulator."""
    app_dir = tmp_path / "app"
    _write_app(app_dir, "mis_annotated_app")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(app_dir), str(PROJECT_DIR)]),
        "PYTHON_SCRIPT_FILE_NAME": "mis_annotated_app.py",
        "DEVHOST_STATE_DIR": str(tmp_path / "state"),
    }
    finished = subprocess.run(
        [sys.executable, "-m", "devhost"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 1
    assert WORKER_MESSAGE in finished.stderr
    assert not (tmp_path / "state" / "azurite").exists()  # nothing was started


refused = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@refused.orchestration_trigger(context_name="ctx")
def custom_context_name(ctx: df.DurableOrchestrationContext) -> Any:
    return ctx.get_input() * 2


def test_an_orchestrator_whose_context_is_not_called_context_is_refused(tmp_path: Path) -> None:
    host = DevHost(refused, state_dir=tmp_path / "state")
    with pytest.raises(
        AppIndexError, match='cannot load the custom_context_name function: the "context" parameter'
    ):
        host.start()


def test_the_index_check_lists_the_app_and_fails_on_a_mis_annotated_function(tmp_path: Path) -> None:
    """`make index-check` runs scripts/index_app.py (in a clean environment from requirements.txt)."""
    _write_app(tmp_path / "app", "mis_annotated_app")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "app")}
    check = [sys.executable, str(PROJECT_DIR / "scripts" / "index_app.py")]

    good = subprocess.run(check, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=120)
    bad = subprocess.run(
        [*check, "mis_annotated_app.py"],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert good.returncode == 0, good.stderr
    listed = {line.split()[0]: line for line in good.stdout.splitlines()[1:-1]}
    assert "httpTrigger" in listed["create_video"]
    assert "v1/videos" in listed["create_video"]
    assert "activityTrigger" in listed["store_video_assets"]
    assert bad.returncode == 1
    assert WORKER_MESSAGE in bad.stderr
