"""Video jobs, one Table Storage row per job in its app's partition.

Partitioning by app makes "one app never sees another's data" structural: every read names the
caller's partition, so another app's id is simply not found.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from gateway import azure_sdk as sdk
from gateway.tables import JOBS_TABLE, Tables

FINISHED = frozenset({"completed", "failed"})
_ID_SPACE = 16**12


def new_job_id(now: float | None = None) -> str:
    """An opaque id whose order is newest first, so a partition scan lists the latest jobs first."""
    millis = int((time.time() if now is None else now) * 1000)
    return f"video_{_ID_SPACE - 1 - millis % _ID_SPACE:012x}{os.urandom(10).hex()}"


@dataclass(frozen=True)
class Job:
    id: str
    app_id: str
    model: str
    prompt: str
    seconds: str
    size: str
    created_at: int
    status: str = "queued"
    progress: int = 0
    completed_at: int | None = None
    expires_at: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    remixed_from_video_id: str | None = None
    upstream_id: str | None = None
    start_at: float | None = None  # the creation time reserved by upstream pacing
    create_started_at: float | None = None  # set before the upstream create call
    video_blob: str | None = None
    thumbnail_blob: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    next_check_at: float | None = None  # when the pipeline looks at the upstream job next
    # When the job is expected to end (gateway.forecast's median), from its latest check.
    estimated_completion_at: float | None = None
    webhook_url: str | None = None
    reference_blob: str | None = None  # the fitted input image, for image-to-video
    # The provider account and model that accepted the job: it finishes there whatever the
    # catalog says later. None on jobs from before providers: the default Azure OpenAI account.
    provider: str | None = None
    provider_model: str | None = None
    upstream_queue_position: int | None = None  # the provider's own queue, when it reports one
    # Per-request options (gateway.video_options), sent to whichever route makes the job.
    options: dict[str, str | bool] = field(default_factory=dict)
    # What the job was charged once settled (the catalog's currency; 0 when its money went back).
    cost: float | None = None
    # The duration the provider reported for the finished video, where it reports one.
    reported_seconds: str | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def to_entity(self) -> dict[str, Any]:
        entity = {k: v for k, v in asdict(self).items() if v is not None and k not in ("id", "app_id")}
        entity["metadata"] = json.dumps(self.metadata)
        if self.options:
            entity["options"] = json.dumps(self.options)
        else:
            entity.pop("options", None)
        return {"PartitionKey": self.app_id, "RowKey": self.id, **entity}

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> Job:
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in entity.items() if k in known}
        values["metadata"] = json.loads(entity.get("metadata") or "{}")
        values["options"] = json.loads(entity.get("options") or "{}")
        return cls(id=entity["RowKey"], app_id=entity["PartitionKey"], **values)


class JobStore:
    def __init__(self, tables: Tables) -> None:
        self._table = tables.get(JOBS_TABLE)

    def add_job(self, job: Job) -> None:
        self._table.create_entity(job.to_entity())

    def get_job(self, app_id: str, job_id: str) -> Job | None:
        try:
            return Job.from_entity(self._table.get_entity(app_id, job_id))
        except sdk.ResourceNotFoundError:
            return None

    def update_job(self, app_id: str, job_id: str, *, allow_finished: bool = False, **changes: Any) -> Job:
        """Apply `changes` unless the job already finished (a late poll must not revive it).

        Uses the row's ETag so two writers never interleave a read-modify-write.
        """
        while True:
            entity = self._table.get_entity(app_id, job_id)
            current = Job.from_entity(entity)
            if current.finished and not allow_finished:
                return current
            updated = replace(current, **changes)
            try:
                self._table.update_entity(
                    updated.to_entity(),
                    mode=sdk.UpdateMode.REPLACE,
                    etag=entity.metadata["etag"],
                    match_condition=sdk.MatchConditions.IfNotModified,
                )
            except sdk.ResourceModifiedError:
                continue
            return updated

    def forget_assets(self, app_id: str, job_id: str) -> Job:
        """Clear the record's blob names once its blobs are deleted (a failed or expired job's
        record stays, so reads can still say what happened)."""
        return self.update_job(
            app_id, job_id, allow_finished=True, video_blob=None, thumbnail_blob=None, reference_blob=None
        )

    def list_jobs(
        self, app_id: str, *, limit: int, after: str | None, newest_first: bool
    ) -> tuple[list[Job], bool]:
        """One page of the app's jobs and whether more follow. Reads only the app's partition."""
        if newest_first:
            # Ids sort newest first, so the partition's natural order is the page order.
            query = "PartitionKey eq @app" + (" and RowKey gt @after" if after else "")
            rows = self._table.query_entities(
                query, parameters={"app": app_id, "after": after or ""}, results_per_page=limit + 1
            )
            page = [Job.from_entity(row) for _, row in zip(range(limit + 1), rows, strict=False)]
        else:
            # Oldest first runs against the key order; retention keeps a partition small.
            query = "PartitionKey eq @app" + (" and RowKey lt @after" if after else "")
            rows = self._table.query_entities(query, parameters={"app": app_id, "after": after or ""})
            page = [Job.from_entity(row) for row in rows][::-1][: limit + 1]
        return page[:limit], len(page) > limit

    def jobs_expired_before(self, when: float) -> list[Job]:
        """Completed jobs (any app) whose assets expired before `when`: for the retention sweep."""
        rows = self._table.query_entities("expires_at lt @when", parameters={"when": int(when)})
        return [Job.from_entity(row) for row in rows]

    def unfinished_jobs_created_before(self, when: float) -> list[Job]:
        """Jobs (any app) created before `when` that are not finished yet: for reconciliation."""
        rows = self._table.query_entities(
            "created_at lt @when and status ne @completed and status ne @failed",
            parameters={"when": int(when), "completed": "completed", "failed": "failed"},
        )
        return [Job.from_entity(row) for row in rows]

    def failed_since(self, when: float) -> list[Job]:
        """Jobs (any app) that failed at or after `when`: for the operators' view of failures.

        A filtered scan of the whole table; retention keeps failed records for days only, so the
        table stays small enough for an operator's occasional look."""
        rows = self._table.query_entities(
            "status eq @failed and completed_at ge @when", parameters={"failed": "failed", "when": int(when)}
        )
        return [Job.from_entity(row) for row in rows]

    def jobs_created_before(self, when: float) -> list[Job]:
        rows = self._table.query_entities("created_at lt @when", parameters={"when": int(when)})
        return [Job.from_entity(row) for row in rows]

    def delete_job(self, app_id: str, job_id: str) -> None:
        with contextlib.suppress(sdk.ResourceNotFoundError):
            self._table.delete_entity(app_id, job_id)
