"""The retention sweep run by the dev host's timer trigger itself, as Azure runs it: no direct
call to the sweep function.

On a stack of this module's own whose SWEEP_SCHEDULE fires every two seconds (so no other test's
videos are swept). VIDEO_RETENTION_DAYS cannot go below one day, so the video's expiry is moved
into the past by writing its job row in Azurite's table directly: an injected state, standing in
for the days no test can wait.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from azure.data.tables import TableServiceClient

from gateway.blobs import VideoAssets, blob_service
from tests.conftest import RunningStack, stack_until_jobs_end
from tests.contract.support import wait_until

EVERY_TWO_SECONDS = "*/2 * * * * *"  # NCRONTAB with seconds
TIMER_RAN = "timer function sweep_expired_videos ran"


@pytest.fixture(scope="module")
def sweeping_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with stack_until_jobs_end(
        tmp_path_factory.mktemp("retention-timer"), SWEEP_SCHEDULE=EVERY_TWO_SECONDS
    ) as stack:
        yield stack


def timer_runs(stack: RunningStack) -> int:
    """How many times the dev host has run the sweep's timer function so far (from its log)."""
    return stack.log_path.read_text(errors="replace").count(TIMER_RAN)


def files_of(assets: VideoAssets, app_id: str, video_id: str) -> list[str]:
    return sorted(name for name, _ in assets.list_blobs() if name.startswith(f"{app_id}/{video_id}/"))


def test_the_timer_deletes_an_expired_videos_blobs_and_its_record_says_expired(
    sweeping_stack: RunningStack,
) -> None:
    stack = sweeping_stack
    app = stack.client.create_app("pro")
    video_id = stack.client.create_video(app.api_key, {"prompt": "A glacier"}).json()["id"]
    assert stack.client.wait_finished(app.api_key, video_id)["status"] == "completed"
    assets = VideoAssets(blob_service(stack.storage_connection_string), "videos")
    stored = files_of(assets, app.id, video_id)
    assert f"{app.id}/{video_id}/video.mp4" in stored

    # Two timer runs while the video has not expired (the second one started after this point):
    # the sweep keeps what is within retention.
    seen = timer_runs(stack)
    wait_until(lambda: timer_runs(stack) >= seen + 2, timeout=30)
    assert files_of(assets, app.id, video_id) == stored

    # Injected state: the expiry in the past, as VIDEO_RETENTION_DAYS (at least 1) would make it.
    jobs = TableServiceClient.from_connection_string(stack.storage_connection_string).get_table_client("jobs")
    row = jobs.get_entity(app.id, video_id)
    row["expires_at"] = int(time.time()) - 1
    jobs.update_entity(row)

    # The next timer run deletes every file of the video from Blob Storage ...
    wait_until(lambda: files_of(assets, app.id, video_id) == [], timeout=30)
    # The sweep logs its report once it has finished (after the deletions seen above).
    wait_until(
        lambda: "retention sweep: SweepReport(expired_assets=1" in stack.log_path.read_text(errors="replace"),
        timeout=30,
    )
    # ... and forgets them in the record, which stays to say what happened.
    row = jobs.get_entity(app.id, video_id)
    assert (row["status"], row.get("video_blob"), row.get("thumbnail_blob")) == ("completed", None, None)
    video = stack.client.get_video(app.api_key, video_id).json()
    assert (video["status"], video["video_url"], video["thumbnail_url"]) == ("completed", None, None)
    download = requests.get(
        f"{stack.api}/v1/videos/{video_id}/content", headers=stack.headers(app.api_key), timeout=10
    )
    assert download.status_code == 404
    assert download.json()["error"]["code"] == "video_expired"
