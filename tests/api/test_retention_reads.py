"""Past `expires_at`, reads say so: no URL, and downloads answer 404 video_expired."""

from __future__ import annotations

import time

import requests
from azure.data.tables import TableServiceClient

from tests.conftest import RunningStack


def test_an_expired_video_has_no_url_and_its_download_is_video_expired(stack: RunningStack) -> None:
    app = stack.client.create_app("pro")
    video_id = stack.client.create_video(app.api_key).json()["id"]
    stack.client.wait_finished(app.api_key, video_id)
    # Time travel: move this job's expiry into the past, as seven days would.
    jobs = TableServiceClient.from_connection_string(stack.storage_connection_string).get_table_client("jobs")
    row = jobs.get_entity(app.id, video_id)
    row["expires_at"] = int(time.time()) - 1
    jobs.update_entity(row)

    video = stack.client.get_video(app.api_key, video_id).json()
    download = requests.get(
        f"{stack.api}/v1/videos/{video_id}/content",
        headers=stack.headers(app.api_key),
        allow_redirects=False,
        timeout=10,
    )

    assert video["status"] == "completed"
    assert video["video_url"] is None
    assert video["thumbnail_url"] is None
    assert download.status_code == 404
    assert download.json()["error"]["code"] == "video_expired"
