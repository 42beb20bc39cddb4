"""A prompt goes in through the public API; a playable MP4 comes out of Blob Storage."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from tests.conftest import RunningStack
from tests.mp4 import boxes, duration_seconds


def wait_until_finished(stack: RunningStack, video_id: str, timeout: float = 90.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = requests.get(f"{stack.api}/v1/videos/{video_id}", headers=stack.headers(), timeout=10)
        assert response.status_code == 200, response.text
        body = response.json()
        if body["status"] in ("completed", "failed"):
            return dict(body)
        assert "openai-poll-after-ms" in response.headers
        time.sleep(0.5)
    raise AssertionError(f"video {video_id} did not finish within {timeout}s")


def test_prompt_becomes_a_playable_mp4_behind_a_read_only_sas_url(stack: RunningStack) -> None:

    response = requests.post(
        f"{stack.api}/v1/videos",
        headers=stack.headers(),
        json={
            "prompt": "A lighthouse at dawn, waves rolling in [e2e-first]",
            "model": "sora-2",
            "seconds": "4",
            "size": "1280x720",
        },
        timeout=30,
    )

    assert response.status_code == 202, response.text
    created = response.json()
    assert created["object"] == "video"
    assert created["status"] == "queued"
    assert created["video_url"] is None
    assert response.headers["Location"] == f"/api/v1/videos/{created['id']}"
    assert int(response.headers["Retry-After"]) >= 1

    finished = wait_until_finished(stack, created["id"])
    assert finished["status"] == "completed", finished
    assert finished["progress"] == 100
    assert finished["size"] == "1280x720"
    video_url = str(finished["video_url"])
    assert "sig=" in video_url
    assert "sp=r&" in video_url

    download = requests.get(video_url, timeout=30)
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "video/mp4"
    mp4 = download.content
    assert boxes(mp4)[0][0] == "ftyp"
    assert abs(duration_seconds(mp4) - 4.0) < 0.5

    # The download link is the same blob, answered as an attachment named after the video.
    saved = requests.get(str(finished["download_url"]), timeout=30)
    assert saved.content == mp4
    assert saved.headers["Content-Disposition"] == f'attachment; filename="{created["id"]}.mp4"'
    assert urlsplit(str(finished["download_url"])).path == urlsplit(video_url).path
    assert created["download_url"] is None

    # The bare blob URL (no SAS) must be refused: the container is private.
    scheme, netloc, path, _, _ = urlsplit(video_url)
    bare = requests.get(urlunsplit((scheme, netloc, path, "", "")), timeout=10)
    assert bare.status_code in (401, 403, 404)

    assert stack.upstream_jobs_for("[e2e-first]") == 1

    # The orchestration's own output names the same blob. The job record is final first; the
    # orchestration ends once the activity's result has crossed back (a queue in Azure).
    status = wait_for_orchestration(stack, created["id"])
    assert status["runtimeStatus"] == "Completed"
    assert status["output"]["status"] == "completed"
    assert urlsplit(video_url).path.endswith("/" + status["output"]["video_blob"])


def wait_for_orchestration(stack: RunningStack, instance_id: str, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = stack.orchestration_status(instance_id)
        if status["runtimeStatus"] != "Running" or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def test_each_read_mints_a_fresh_sas_url(stack: RunningStack) -> None:
    created = requests.post(
        f"{stack.api}/v1/videos",
        headers=stack.headers(),
        json={"prompt": "A paper boat on a stream"},
        timeout=30,
    ).json()
    wait_until_finished(stack, created["id"])
    first = requests.get(f"{stack.api}/v1/videos/{created['id']}", headers=stack.headers(), timeout=10).json()
    time.sleep(1.1)
    second = requests.get(
        f"{stack.api}/v1/videos/{created['id']}", headers=stack.headers(), timeout=10
    ).json()
    assert first["video_url"] != second["video_url"]
    assert urlsplit(first["video_url"]).path == urlsplit(second["video_url"]).path


def test_requests_without_a_valid_key_are_refused(stack: RunningStack) -> None:
    missing = requests.post(f"{stack.api}/v1/videos", json={"prompt": "x"}, timeout=10)
    wrong = requests.get(
        f"{stack.api}/v1/videos/video_123", headers={"Authorization": "Bearer sgw_wrong"}, timeout=10
    )
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_api_key"
        assert response.headers["Content-Type"].startswith("application/json")


def test_health_reports_storage(stack: RunningStack) -> None:
    response = requests.get(f"{stack.api}/health", timeout=10)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
