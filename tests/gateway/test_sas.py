"""SAS URLs minted by the gateway: read-only, one blob, short-lived; Azurite enforces it."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import requests

from gateway.blobs import CLOCK_SKEW, VideoAssets

PAYLOAD = os.urandom(300_000)


def upload(assets: VideoAssets, name: str = "app_a/video_1/video.mp4") -> str:
    assets.upload_stream(name, io.BytesIO(PAYLOAD), length=len(PAYLOAD), content_type="video/mp4")
    return name


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_sas_url_reads_exactly_that_blob(video_assets: VideoAssets) -> None:
    url = video_assets.read_url(upload(video_assets), timedelta(minutes=5))
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == PAYLOAD
    assert response.headers["Content-Type"] == "video/mp4"
    assert parse_qs(urlsplit(url).query)["sp"] == ["r"]


def test_expired_sas_is_refused(video_assets: VideoAssets) -> None:
    url = video_assets.read_url(upload(video_assets), timedelta(seconds=-60))
    assert requests.get(url, timeout=10).status_code == 403


def test_tampered_signature_is_refused(video_assets: VideoAssets) -> None:
    url = video_assets.read_url(upload(video_assets), timedelta(minutes=5))
    signature = parse_qs(urlsplit(url).query)["sig"][0]
    forged = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert requests.get(with_query(url, sig=forged), timeout=10).status_code == 403


def test_widened_permissions_are_refused(video_assets: VideoAssets) -> None:
    url = video_assets.read_url(upload(video_assets), timedelta(minutes=5))
    assert requests.get(with_query(url, sp="rw"), timeout=10).status_code == 403


def test_sas_does_not_open_another_blob(video_assets: VideoAssets) -> None:
    upload(video_assets, "app_b/video_2/video.mp4")
    url = video_assets.read_url(upload(video_assets), timedelta(minutes=5))
    other = url.replace("app_a/video_1", "app_b/video_2")
    assert requests.get(other, timeout=10).status_code == 403


def test_sas_cannot_write_or_delete(video_assets: VideoAssets) -> None:
    name = upload(video_assets)
    url = video_assets.read_url(name, timedelta(minutes=5))
    put = requests.put(url, data=b"evil", headers={"x-ms-blob-type": "BlockBlob"}, timeout=10)
    delete = requests.delete(url, timeout=10)
    assert put.status_code == 403
    assert delete.status_code == 403
    assert requests.get(url, timeout=10).content == PAYLOAD


def test_a_download_url_makes_storage_answer_an_attachment(video_assets: VideoAssets) -> None:
    url = video_assets.read_url(upload(video_assets), timedelta(minutes=5), save_as="video_1.mp4")
    response = requests.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == PAYLOAD
    assert response.headers["Content-Disposition"] == 'attachment; filename="video_1.mp4"'
    query = parse_qs(urlsplit(url).query)
    assert query["sp"] == ["r"]
    # The disposition is signed: a link cannot be changed to show inline or under another name.
    assert requests.get(with_query(url, rscd="inline"), timeout=10).status_code == 403
    # Without `save_as`, Storage sets no disposition (the player's URL stays inline).
    plain = requests.get(video_assets.read_url(upload(video_assets), timedelta(minutes=5)), timeout=10)
    assert "Content-Disposition" not in plain.headers


def minted_five_minute_url(video_assets: VideoAssets) -> str:
    """A 5-minute read URL, checked to start CLOCK_SKEW before now (another machine's clock may
    run behind) and to end 5 minutes after, both in UTC."""
    minted_at = datetime.now(UTC)
    url = video_assets.read_url(upload(video_assets), timedelta(minutes=5))
    query = parse_qs(urlsplit(url).query)
    start = datetime.strptime(query["st"][0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    expiry = datetime.strptime(query["se"][0], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(start - (minted_at - CLOCK_SKEW)) < timedelta(seconds=5)
    assert abs(expiry - (minted_at + timedelta(minutes=5))) < timedelta(seconds=5)
    return url


def test_the_sas_starts_before_now_for_clock_skew_and_allows_http_only_for_a_local_emulator(
    video_assets: VideoAssets,
) -> None:
    url = minted_five_minute_url(video_assets)
    query = parse_qs(urlsplit(url).query)
    # Azurite here is plain http; against real Storage (https) only https is allowed.
    assert query["spr"] == ["https,http"]


@pytest.fixture
def local_time_far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone set to UTC+5:30 (a POSIX TZ rule: no zone files needed)."""
    monkeypatch.setenv("TZ", "XST-05:30")
    time.tzset()
    try:
        yield
    finally:
        monkeypatch.undo()
        time.tzset()


def test_the_sas_times_are_utc_whatever_the_hosts_local_time_zone(
    video_assets: VideoAssets, local_time_far_from_utc: None
) -> None:
    assert time.localtime().tm_gmtoff == 5 * 3600 + 30 * 60
    url = minted_five_minute_url(video_assets)
    assert requests.get(url, timeout=10).content == PAYLOAD
