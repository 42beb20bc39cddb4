"""`python -m cli` (vgw) end to end against the local stack, in a subprocess as a user runs it."""

from __future__ import annotations

import http.server
import json
import os
import pty
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import PROJECT_DIR, RunningStack
from tests.gateway_client import AppCredentials
from tests.images_support import image_bytes
from tests.mp4 import boxes

VIDEO_ID = re.compile(r"video_[A-Za-z0-9_-]+")


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_cli(
    stack: RunningStack, *args: str, key: str | None = None, admin: bool = False, cwd: Path | None = None
) -> Result:
    """Run vgw with the key(s) in the environment; fail if any key given to it is echoed."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("VGW_")}
    env["VGW_BASE_URL"] = stack.api
    env["PYTHONPATH"] = str(PROJECT_DIR)
    if key is not None:
        env["VGW_API_KEY"] = key
    if admin:
        env["VGW_ADMIN_KEY"] = stack.admin_key
    completed = subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=cwd or PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    for secret in (key, stack.admin_key if admin else None):
        if secret:
            assert secret not in completed.stdout, "a key was printed on stdout"
            assert secret not in completed.stderr, "a key was printed on stderr"
    return Result(completed.returncode, completed.stdout, completed.stderr)


@pytest.fixture
def app(stack: RunningStack) -> AppCredentials:
    """A pro app of the test's own, so its quota is not shared."""
    return stack.client.create_app("pro", name="cli test")


def test_create_no_wait_prints_the_id_and_get_shows_the_video(
    stack: RunningStack, app: AppCredentials
) -> None:
    created = run_cli(
        stack,
        "create",
        "A lighthouse in fog",
        "--model",
        "sora-2",
        "--seconds",
        "4",
        "--no-wait",
        key=app.api_key,
    )
    assert created.code == 0, created.stderr
    video_id = created.stdout.strip()
    assert VIDEO_ID.fullmatch(video_id), created.stdout

    shown = run_cli(stack, "get", video_id, "--json", key=app.api_key)
    assert shown.code == 0, shown.stderr
    body = shown.json()
    assert body["id"] == video_id
    assert body["prompt"] == "A lighthouse in fog"
    assert body["model"] == "sora-2"

    people = run_cli(stack, "get", video_id, key=app.api_key)
    assert people.code == 0
    assert "id:" in people.stdout
    assert video_id in people.stdout
    assert "A lighthouse in fog" in people.stdout
    stack.client.wait_finished(app.api_key, video_id)


def test_create_waits_downloads_an_mp4_and_the_other_video_commands_work(
    stack: RunningStack, app: AppCredentials, tmp_path: Path
) -> None:
    out = tmp_path / "kite.mp4"
    created = run_cli(
        stack,
        "create",
        "A red kite",
        "--model",
        "sora-2",
        "--size",
        "720x1280",
        "-o",
        str(out),
        key=app.api_key,
    )
    assert created.code == 0, created.stderr
    data = out.read_bytes()
    assert boxes(data)[0][0] == "ftyp"
    video_id = VIDEO_ID.search(created.stdout)
    assert video_id is not None, created.stdout
    vid = video_id.group(0)
    # Not a terminal: one line per status change, the last one `completed` at 100%.
    lines = [line for line in created.stderr.splitlines() if line.startswith(vid)]
    assert lines, created.stderr
    assert "completed" in lines[-1]
    assert "100%" in lines[-1]
    assert "\r" not in created.stderr
    assert not list(tmp_path.glob("*.part"))

    again = tmp_path / "again.mp4"
    downloaded = run_cli(stack, "download", vid, "-o", str(again), key=app.api_key)
    assert downloaded.code == 0, downloaded.stderr
    assert again.read_bytes() == data

    thumb = tmp_path / "thumb.jpg"
    thumbnail = run_cli(stack, "download", vid, "-o", str(thumb), "--variant", "thumbnail", key=app.api_key)
    assert thumbnail.code == 0, thumbnail.stderr
    assert thumb.read_bytes()[:2] == b"\xff\xd8"

    # Default output name: <id>.mp4 in the working directory; remix waits like create.
    remixed = run_cli(stack, "remix", vid, "Same kite, at night", "--json", key=app.api_key, cwd=tmp_path)
    assert remixed.code == 0, remixed.stderr
    remix = remixed.json()
    assert remix["status"] == "completed"
    assert remix["remixed_from_video_id"] == vid
    assert boxes((tmp_path / f"{remix['id']}.mp4").read_bytes())[0][0] == "ftyp"

    listed = run_cli(stack, "list", "--limit", "5", "--json", key=app.api_key)
    assert listed.code == 0, listed.stderr
    assert {v["id"] for v in listed.json()["data"]} == {vid, remix["id"]}

    deleted = run_cli(stack, "delete", remix["id"], key=app.api_key)
    assert deleted.code == 0, deleted.stderr
    assert stack.client.get_video(app.api_key, remix["id"]).status_code == 404


def test_a_failed_job_exits_non_zero_with_its_error_code(stack: RunningStack, app: AppCredentials) -> None:
    failed = run_cli(stack, "create", "A forbidden scene #sim:blocked", "--model", "sora-2", key=app.api_key)
    assert failed.code == 1
    video_id = VIDEO_ID.search(failed.stderr)
    assert video_id is not None, failed.stderr
    video = stack.client.get_video(app.api_key, video_id.group(0)).json()
    assert video["status"] == "failed"
    error_line = failed.stderr.strip().splitlines()[-1]
    assert error_line.startswith("error: ")
    assert error_line.endswith(f"({video['error']['code']})")
    assert video["error"]["message"] in error_line
    assert failed.stdout == ""


def test_an_image_is_sent_as_the_sdk_sends_it(
    stack: RunningStack, app: AppCredentials, tmp_path: Path
) -> None:
    picture = tmp_path / "cat.jpg"
    picture.write_bytes(image_bytes(640, 480, "JPEG"))
    created = run_cli(
        stack,
        "create",
        "The cat wakes up",
        "--model",
        "sora-2",
        "--size",
        "720x1280",
        "--image",
        str(picture),
        "--no-wait",
        key=app.api_key,
    )
    assert created.code == 0, created.stderr
    video = stack.client.wait_finished(app.api_key, created.stdout.strip())
    assert video["status"] == "completed", video

    # A model without image input refuses the part by name: so the file did arrive as input_reference.
    refused = run_cli(
        stack,
        "create",
        "The cat wakes up",
        "--model",
        "veo-3.1",
        "--image",
        str(picture),
        "--no-wait",
        key=app.api_key,
    )
    assert refused.code == 1
    assert refused.stderr.startswith("error: ")
    assert "(invalid_value)" in refused.stderr
    assert "input_reference" in refused.stderr


def options_received(stack: RunningStack, marker: str) -> list[dict[str, Any]]:
    """What each upstream create with `marker` in its prompt carried of the options, in the
    provider's own names (the simulator records it)."""
    return stack.upstream_options_for(marker)


def test_video_options_are_sent_in_json_and_as_form_text_with_an_image(
    stack: RunningStack, app: AppCredentials, tmp_path: Path
) -> None:
    picture = tmp_path / "heron.png"
    picture.write_bytes(image_bytes(1280, 720, "PNG"))
    with_image = run_cli(
        stack,
        "create",
        "A heron takes off [cli-options-image]",
        "--model",
        "veo-3.0",
        "--size",
        "1280x720",
        "--image",
        str(picture),
        "--negative-prompt",
        "fog",
        "--person-generation",
        "allow_adult",
        "--no-wait",
        key=app.api_key,
    )
    silent = run_cli(
        stack,
        "create",
        "A heron lands [cli-options-silent]",
        "--model",
        "veo-3.1-fal",
        "--no-audio",
        "--no-wait",
        key=app.api_key,
    )
    for created in (with_image, silent):
        assert created.code == 0, created.stderr
        assert stack.client.wait_finished(app.api_key, created.stdout.strip())["status"] == "completed"
    # The Gemini API's names for the first (multipart: the flag and choice went as text), fal's for the second.
    assert options_received(stack, "[cli-options-image]") == [
        {"negativePrompt": "fog", "personGeneration": "allow_adult"}
    ]
    assert options_received(stack, "[cli-options-silent]") == [{"generate_audio": False}]


def test_list_usage_and_models_print_the_apis_json(stack: RunningStack, app: AppCredentials) -> None:
    usage = run_cli(stack, "usage", "--json", key=app.api_key)
    assert usage.code == 0, usage.stderr
    assert usage.json()["plan"] == "pro"
    assert usage.json()["used"] == {"hour": 0, "day": 0}

    models = run_cli(stack, "--json", "models", key=app.api_key)  # --json before the command too
    assert models.code == 0, models.stderr
    ids = [model["id"] for model in models.json()["data"]]
    assert "sora-2" in ids

    listed = run_cli(stack, "list", "--json", key=app.api_key)
    assert listed.code == 0, listed.stderr
    assert listed.json()["object"] == "list"
    assert listed.json()["data"] == []

    people = run_cli(stack, "models", key=app.api_key)
    assert people.code == 0
    assert all(model_id in people.stdout for model_id in ids)
    shown = run_cli(stack, "usage", key=app.api_key).stdout
    assert "pro" in shown
    assert "0.00 USD spent, 0.00 reserved, no budget" in shown  # spend per UTC day and month


def test_apps_create_rotate_and_plan_with_the_admin_key(stack: RunningStack) -> None:
    made = run_cli(stack, "apps", "create", "cli operator app", "--plan", "pro", "--json", admin=True)
    assert made.code == 0, made.stderr
    body = made.json()
    app_id, old_key = body["id"], body["api_key"]
    assert body["plan"] == "pro"
    assert body["webhook_secret"].startswith("whsec_")
    assert run_cli(stack, "usage", key=old_key).code == 0

    rotated = run_cli(stack, "apps", "rotate-key", app_id, admin=True)
    assert rotated.code == 0, rotated.stderr
    found = re.search(r"api key: (\S+)", rotated.stdout)
    assert found is not None, rotated.stdout
    new_key = found.group(1)
    assert new_key != old_key

    stale = run_cli(stack, "usage", key=old_key)
    assert stale.code == 1
    assert "(invalid_api_key)" in stale.stderr

    planned = run_cli(stack, "apps", "plan", app_id, "free", admin=True)
    assert planned.code == 0, planned.stderr
    usage = run_cli(stack, "usage", "--json", key=new_key)
    assert usage.code == 0, usage.stderr
    assert usage.json()["plan"] == "free"

    people = run_cli(stack, "apps", "create", "cli people app", "--plan", "business", admin=True)
    assert people.code == 0, people.stderr
    shown_key = re.search(r"api key: +(sgw_\S+)", people.stdout)
    assert shown_key is not None
    assert re.search(r"webhook secret: +whsec_", people.stdout)
    assert run_cli(stack, "usage", "--json", key=shown_key.group(1)).json()["plan"] == "business"


def test_apps_list_usage_and_failures_for_operators(stack: RunningStack, app: AppCredentials) -> None:
    made = stack.client.create_app("pro", name="cli listed app")
    listed = run_cli(stack, "apps", "list", "--json", "--limit", "100", admin=True)
    assert listed.code == 0, listed.stderr
    assert made.id in [item["id"] for item in listed.json()["data"]]
    people = run_cli(stack, "apps", "list", admin=True)
    assert people.code == 0, people.stderr
    assert made.id in people.stdout

    failed = run_cli(
        stack, "create", "A doomed scene #sim:fail", "--model", "sora-2", "--seconds", "4", key=app.api_key
    )
    assert failed.code == 1
    video_id = VIDEO_ID.search(failed.stderr)
    assert video_id is not None, failed.stderr
    usage = run_cli(stack, "apps", "usage", app.id, "--json", admin=True)
    assert usage.code == 0, usage.stderr
    assert usage.json() == stack.client.usage(app.api_key)
    failures = run_cli(stack, "apps", "failures", "--hours", "1", "--limit", "100", admin=True)
    assert failures.code == 0, failures.stderr
    line = next(line for line in failures.stdout.splitlines() if line.startswith(video_id.group(0)))
    assert app.id in line
    assert "sora-2@" in line
    assert re.search(r"^by provider: .*\b\d+", failures.stdout, re.MULTILINE)


def test_setup_installs_the_vgw_command(stack: RunningStack) -> None:
    # `make setup` installs the project's console script next to the interpreter running the tests.
    vgw = Path(sys.executable).parent / "vgw"
    assert vgw.is_file(), "make setup should install vgw into the virtual environment"
    env = {**os.environ, "VGW_BASE_URL": stack.api, "VGW_API_KEY": stack.dev_key}
    completed = subprocess.run(
        [str(vgw), "models", "--json"],
        cwd="/",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "sora-2" in [model["id"] for model in json.loads(completed.stdout)["data"]]


def test_a_missing_or_wrong_key_is_a_clear_error(stack: RunningStack) -> None:
    missing = run_cli(stack, "usage")
    assert missing.code == 1
    assert missing.stderr.strip() == "error: no app key: pass --key or set VGW_API_KEY (missing_api_key)"

    no_admin = run_cli(stack, "apps", "rotate-key", "app_x")
    assert no_admin.code == 1
    assert "VGW_ADMIN_KEY" in no_admin.stderr
    assert "(missing_admin_key)" in no_admin.stderr

    wrong = run_cli(stack, "usage", "--key", "sgw_not_a_real_key_123")
    assert wrong.code == 1
    assert "(invalid_api_key)" in wrong.stderr
    assert "sgw_not_a_real_key_123" not in wrong.stderr + wrong.stdout


def test_the_key_travels_in_a_header_never_in_the_url_or_the_output(stack: RunningStack) -> None:
    secret = stack.dev_key
    shown = run_cli(stack, "get", "video_does_not_exist", "--key", secret)
    assert shown.code == 1
    assert shown.stderr.strip().endswith("(video_not_found)")
    assert secret not in shown.stdout + shown.stderr
    # The gateway reached with the key in the header only: a request without it is refused.
    assert requests.get(f"{stack.api}/v1/usage", timeout=10).status_code == 401


def test_bad_usage_exits_2(stack: RunningStack) -> None:
    assert run_cli(stack, "list", "--limit", "0", key="sgw_unused_key_0123456789").code == 2
    assert run_cli(stack, "create", key="sgw_unused_key_0123456789").code == 2
    assert run_cli(stack, "apps", "plan", "app_x", "platinum", admin=True).code == 2
    assert run_cli(stack, "frobnicate").code == 2


def test_on_a_terminal_the_progress_bar_is_redrawn(
    stack: RunningStack, app: AppCredentials, tmp_path: Path
) -> None:
    primary, secondary = pty.openpty()
    env = {name: value for name, value in os.environ.items() if not name.startswith("VGW_")}
    env.update({"VGW_BASE_URL": stack.api, "VGW_API_KEY": app.api_key, "PYTHONPATH": str(PROJECT_DIR)})
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        completed = subprocess.run(
            [
                sys.executable,
                "-m",
                "cli",
                "create",
                "A tty kite",
                "--model",
                "sora-2",
                "-o",
                str(tmp_path / "t.mp4"),
            ],
            cwd=PROJECT_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=secondary,
            timeout=180,
            check=False,
        )
    finally:
        os.close(secondary)
        reader.join(timeout=5)
        os.close(primary)
    shown = b"".join(chunks).decode(errors="replace")
    assert completed.returncode == 0, shown
    assert "\r" in shown
    assert "[" + "#" * 30 + "] completed  100%" in shown
    assert app.api_key not in shown
    assert boxes((tmp_path / "t.mp4").read_bytes())[0][0] == "ftyp"


def test_apps_list_on_a_gateway_without_the_endpoint_says_so(stack: RunningStack) -> None:
    """A gateway that predates GET /v1/manage/apps (a loopback stand-in answering 405)."""

    class Old(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(405 if self.path.startswith("/api/v1/manage/apps") else 500)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Old)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        old = RunningStack(
            **{**stack.__dict__, "api": f"http://127.0.0.1:{server.server_port}/api", "process": None}
        )
        listed = run_cli(old, "apps", "list", admin=True)
    finally:
        server.shutdown()
        server.server_close()
    assert listed.code == 1
    assert "cannot list apps" in listed.stderr
    assert "HTTP 405" in listed.stderr
    assert "(apps_list_unsupported)" in listed.stderr
