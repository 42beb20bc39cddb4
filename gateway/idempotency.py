"""Idempotency-Key: the same key from the same app within 24 h names the same job.

A key is claimed with an insert-only row before any quota is taken, so of several racing
requests exactly one creates the job and the others return it.
"""

from __future__ import annotations

import contextlib
import hashlib
from dataclasses import dataclass

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from gateway.tables import Tables

IDEMPOTENCY_TABLE = "idempotency"
WINDOW_SECONDS = 24 * 3600
MAX_KEY_CHARS = 255


@dataclass(frozen=True)
class Claim:
    job_id: str
    fingerprint: str
    created_at: float


class IdempotencyStore:
    def __init__(self, tables: Tables) -> None:
        self._table = tables.get(IDEMPOTENCY_TABLE)

    def claim(self, app_id: str, key: str, candidate: Claim) -> Claim:
        """The live claim on `key`: `candidate` if it was free (or expired), else the earlier one."""
        row_key = _row_key(key)
        entity = {"PartitionKey": app_id, "RowKey": row_key, **candidate.__dict__}
        while True:
            try:
                self._table.create_entity(entity)
            except ResourceExistsError:
                pass
            else:
                return candidate
            try:
                existing = self._table.get_entity(app_id, row_key)
            except ResourceNotFoundError:
                continue  # released meanwhile: try again
            held = Claim(str(existing["job_id"]), str(existing["fingerprint"]), float(existing["created_at"]))
            if held.created_at > candidate.created_at - WINDOW_SECONDS:
                return held
            try:  # an expired claim is replaced, unless someone else replaced it first
                self._table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=existing.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
            except ResourceModifiedError:
                continue
            return candidate

    def release(self, app_id: str, key: str, job_id: str) -> None:
        """Drop our claim (the request it guarded was refused), leaving anyone else's alone."""
        try:
            existing = self._table.get_entity(app_id, _row_key(key))
        except ResourceNotFoundError:
            return
        if existing["job_id"] != job_id:
            return
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            self._table.delete_entity(
                app_id,
                _row_key(key),
                etag=existing.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )


def _row_key(key: str) -> str:
    # Keys are caller-chosen text; a hash is always a valid, fixed-length row key.
    return hashlib.sha256(key.encode()).hexdigest()
