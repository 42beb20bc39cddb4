"""Idempotency-Key: the same key from the same app within 24 h names the same job.

A key is claimed with an insert-only row before any quota is taken, so of several racing
requests exactly one creates the job and the others return it. Once the job's record is written
the claim is stamped `recorded_job_id`: a replay can then tell a job still being made (no stamp)
from one that existed and was deleted (stamp, no record), without waiting to find out.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass, field
from typing import Any

from gateway import azure_sdk as sdk
from gateway.tables import Tables

IDEMPOTENCY_TABLE = "idempotency"
WINDOW_SECONDS = 24 * 3600
MAX_KEY_CHARS = 255


@dataclass(frozen=True)
class Claim:
    job_id: str
    fingerprint: str
    created_at: float
    recorded: bool = False  # the job's record was written (it may have been deleted since)
    etag: str | None = field(default=None, compare=False)

    def entity(self, app_id: str, key: str) -> dict[str, Any]:
        return {
            "PartitionKey": app_id,
            "RowKey": _row_key(key),
            "job_id": self.job_id,
            "fingerprint": self.fingerprint,
            "created_at": self.created_at,
        }


class IdempotencyStore:
    def __init__(self, tables: Tables) -> None:
        self._table = tables.get(IDEMPOTENCY_TABLE)

    def claim(self, app_id: str, key: str, candidate: Claim) -> Claim:
        """The live claim on `key`: `candidate` if it was free (or expired), else the earlier one."""
        entity = candidate.entity(app_id, key)
        while True:
            try:
                self._table.create_entity(entity)
            except sdk.ResourceExistsError:
                pass
            else:
                return candidate
            held = self._read(app_id, key)
            if held is None:
                continue  # released meanwhile: try again
            if held.created_at > candidate.created_at - WINDOW_SECONDS:
                return held
            replaced = self.take_over(app_id, key, held, candidate)
            if replaced is not None:
                return replaced

    def take_over(self, app_id: str, key: str, held: Claim, candidate: Claim) -> Claim | None:
        """Replace `held` (expired, or abandoned by a request that never recorded its job) with
        `candidate`: `candidate` if we did, None if the row changed meanwhile (ask again)."""
        try:
            self._table.update_entity(
                candidate.entity(app_id, key),
                mode=sdk.UpdateMode.REPLACE,
                etag=held.etag,
                match_condition=sdk.MatchConditions.IfNotModified,
            )
        except (sdk.ResourceModifiedError, sdk.ResourceNotFoundError):
            return None
        return candidate

    def mark_recorded(self, app_id: str, key: str, job_id: str) -> None:
        """Stamp the claim: `job_id`'s record exists. Merged unconditionally: if another request
        took the key over meanwhile, its claim names another job and the stamp does not match it."""
        with contextlib.suppress(sdk.ResourceNotFoundError):
            self._table.update_entity(
                {"PartitionKey": app_id, "RowKey": _row_key(key), "recorded_job_id": job_id},
                mode=sdk.UpdateMode.MERGE,
            )

    def release(self, app_id: str, key: str, job_id: str) -> None:
        """Drop our claim (the request it guarded was refused), leaving anyone else's alone."""
        held = self._read(app_id, key)
        if held is None or held.job_id != job_id:
            return
        with contextlib.suppress(sdk.ResourceModifiedError, sdk.ResourceNotFoundError):
            self._table.delete_entity(
                app_id,
                _row_key(key),
                etag=held.etag,
                match_condition=sdk.MatchConditions.IfNotModified,
            )

    def _read(self, app_id: str, key: str) -> Claim | None:
        try:
            existing = self._table.get_entity(app_id, _row_key(key))
        except sdk.ResourceNotFoundError:
            return None
        job_id = str(existing["job_id"])
        return Claim(
            job_id=job_id,
            fingerprint=str(existing["fingerprint"]),
            created_at=float(existing["created_at"]),
            recorded=existing.get("recorded_job_id") == job_id,
            etag=existing.metadata["etag"],
        )


def _row_key(key: str) -> str:
    # Keys are caller-chosen text; a hash is always a valid, fixed-length row key.
    return hashlib.sha256(key.encode()).hexdigest()
