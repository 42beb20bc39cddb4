"""A thin test client for the gateway's HTTP API (plain requests, no gateway code)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import requests


@dataclass(frozen=True)
class AppCredentials:
    id: str
    api_key: str
    webhook_secret: str


class GatewayClient:
    def __init__(self, api: str, admin_key: str) -> None:
        self.api = api
        self.admin_key = admin_key

    def create_app(self, plan: str = "pro", name: str = "test app") -> AppCredentials:
        response = requests.post(
            f"{self.api}/v1/manage/apps",
            headers={"x-admin-key": self.admin_key},
            json={"name": name, "plan": plan},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        body = response.json()
        return AppCredentials(id=body["id"], api_key=body["api_key"], webhook_secret=body["webhook_secret"])

    def manage(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method,
            f"{self.api}/v1/manage{path}",
            headers={"x-admin-key": self.admin_key},
            timeout=30,
            **kwargs,
        )

    def create_video(
        self, key: str, body: Any = None, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> requests.Response:
        payload = {"prompt": "A calm lake at sunrise"} if body is None else body
        return requests.post(
            f"{self.api}/v1/videos",
            headers={"Authorization": f"Bearer {key}", **(headers or {})},
            json=payload,
            timeout=60,
            **kwargs,
        )

    def get_video(self, key: str, video_id: str) -> requests.Response:
        return requests.get(
            f"{self.api}/v1/videos/{video_id}", headers={"Authorization": f"Bearer {key}"}, timeout=30
        )

    def delete_video(self, key: str, video_id: str) -> requests.Response:
        return requests.delete(
            f"{self.api}/v1/videos/{video_id}", headers={"Authorization": f"Bearer {key}"}, timeout=30
        )

    def usage(self, key: str) -> dict[str, Any]:
        response = requests.get(
            f"{self.api}/v1/usage", headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait_for(
        self, key: str, video_id: str, statuses: tuple[str, ...], timeout: float = 90.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            response = self.get_video(key, video_id)
            assert response.status_code == 200, response.text
            body = response.json()
            if body["status"] in statuses:
                return body
            time.sleep(0.3)
        raise AssertionError(f"video {video_id} never reached {statuses}; last seen {body}")

    def wait_finished(self, key: str, video_id: str, timeout: float = 90.0) -> dict[str, Any]:
        return self.wait_for(key, video_id, ("completed", "failed"), timeout)
