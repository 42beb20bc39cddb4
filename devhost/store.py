"""SQLite persistence for orchestration instances, their history and their pending work.

Everything the engine is about to act on (scheduled activities, durable timers, undelivered
events) is written here first, so a host started on the same state directory can resume every
unfinished instance. All calls happen on the host's event-loop thread; each public method is one
short transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devhost.history import JsonDict

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    status TEXT NOT NULL,
    input TEXT,
    output TEXT,
    custom_status TEXT,
    created_time TEXT NOT NULL,
    last_updated_time TEXT NOT NULL,
    engine_state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    instance_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (instance_id, position)
);
CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    execution_id TEXT,
    event TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_by_instance ON inbox (instance_id, seq);
CREATE TABLE IF NOT EXISTS activities (
    instance_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    task_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    input TEXT,
    PRIMARY KEY (instance_id, execution_id, task_id)
);
CREATE TABLE IF NOT EXISTS timers (
    instance_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    timer_id INTEGER NOT NULL,
    fire_at TEXT NOT NULL,
    PRIMARY KEY (instance_id, execution_id, timer_id)
);
CREATE TABLE IF NOT EXISTS schedule_monitor (
    function_name TEXT PRIMARY KEY,
    next_occurrence TEXT NOT NULL
);
"""


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


@dataclass
class InstanceRecord:
    instance_id: str
    name: str
    execution_id: str
    status: str
    input: Any
    output: Any
    custom_status: Any
    created_time: str
    last_updated_time: str
    engine_state: JsonDict = field(default_factory=dict)


@dataclass(frozen=True)
class InboxItem:
    seq: int
    execution_id: str | None
    event: JsonDict


@dataclass(frozen=True)
class PendingActivity:
    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None


@dataclass(frozen=True)
class PendingTimer:
    instance_id: str
    execution_id: str
    timer_id: int
    fire_at: str


@dataclass
class EpisodeWrite:
    """Everything one orchestrator episode changes, applied atomically."""

    instance: InstanceRecord
    new_history: list[JsonDict]
    consumed_inbox: list[int]
    activities: list[PendingActivity]
    timers: list[PendingTimer]
    cancelled_timers: list[int]
    finished: bool
    # Set when the episode continued-as-new: the history restarts with these events.
    restart_history: bool = False
    next_execution_start: JsonDict | None = None


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # The host touches the database from its loop thread only, but stop() may close it from
        # the thread that started the host.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # ---- instances -------------------------------------------------------------------------

    @staticmethod
    def _instance_from_row(row: sqlite3.Row) -> InstanceRecord:
        return InstanceRecord(
            instance_id=row["instance_id"],
            name=row["name"],
            execution_id=row["execution_id"],
            status=row["status"],
            input=_load(row["input"]),
            output=_load(row["output"]),
            custom_status=_load(row["custom_status"]),
            created_time=row["created_time"],
            last_updated_time=row["last_updated_time"],
            engine_state=json.loads(row["engine_state"]),
        )

    @staticmethod
    def _write_instance(db: sqlite3.Connection, record: InstanceRecord) -> None:
        db.execute(
            "INSERT OR REPLACE INTO instances (instance_id, name, execution_id, status, input, output,"
            " custom_status, created_time, last_updated_time, engine_state)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.instance_id,
                record.name,
                record.execution_id,
                record.status,
                _dump(record.input),
                _dump(record.output),
                _dump(record.custom_status),
                record.created_time,
                record.last_updated_time,
                json.dumps(record.engine_state),
            ),
        )

    @staticmethod
    def _delete_instance_rows(db: sqlite3.Connection, instance_id: str) -> None:
        for table in ("instances", "history", "inbox", "activities", "timers"):
            db.execute(f"DELETE FROM {table} WHERE instance_id = ?", (instance_id,))  # noqa: S608

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        row = self._db.execute("SELECT * FROM instances WHERE instance_id = ?", (instance_id,)).fetchone()
        return None if row is None else self._instance_from_row(row)

    def create_instance(self, record: InstanceRecord, started: JsonDict) -> None:
        """Create (or replace a finished) instance and queue its ExecutionStarted event."""
        with self._transaction() as db:
            self._delete_instance_rows(db, record.instance_id)
            self._write_instance(db, record)
            db.execute(
                "INSERT INTO inbox (instance_id, execution_id, event) VALUES (?, ?, ?)",
                (record.instance_id, record.execution_id, json.dumps(started)),
            )

    def update_instance(self, record: InstanceRecord, history: Iterable[JsonDict] = ()) -> None:
        with self._transaction() as db:
            self._write_instance(db, record)
            self._append_history(db, record.instance_id, list(history))

    def finish_instance(self, record: InstanceRecord, history: Iterable[JsonDict]) -> None:
        """Record a final state reached outside an episode (terminate) and drop all pending work."""
        with self._transaction() as db:
            self._write_instance(db, record)
            self._append_history(db, record.instance_id, list(history))
            for table in ("inbox", "activities", "timers"):
                db.execute(f"DELETE FROM {table} WHERE instance_id = ?", (record.instance_id,))  # noqa: S608

    def query_instances(
        self,
        created_from: str | None = None,
        created_to: str | None = None,
        statuses: Iterable[str] | None = None,
        prefix: str | None = None,
    ) -> list[InstanceRecord]:
        clauses: list[str] = []
        params: list[Any] = []
        if created_from:
            clauses.append("created_time >= ?")
            params.append(created_from)
        if created_to:
            clauses.append("created_time <= ?")
            params.append(created_to)
        status_list = list(statuses or [])
        if status_list:
            clauses.append(f"status IN ({','.join('?' for _ in status_list)})")
            params.extend(status_list)
        if prefix:
            clauses.append("substr(instance_id, 1, ?) = ?")
            params.extend([len(prefix), prefix])
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._db.execute(
            f"SELECT * FROM instances{where} ORDER BY created_time, instance_id",  # noqa: S608
            params,
        ).fetchall()
        return [self._instance_from_row(row) for row in rows]

    def purge(self, instance_ids: Iterable[str]) -> int:
        deleted = 0
        with self._transaction() as db:
            for instance_id in instance_ids:
                exists = db.execute(
                    "SELECT 1 FROM instances WHERE instance_id = ?", (instance_id,)
                ).fetchone()
                if exists:
                    self._delete_instance_rows(db, instance_id)
                    deleted += 1
        return deleted

    # ---- history and inbox -----------------------------------------------------------------

    @staticmethod
    def _append_history(db: sqlite3.Connection, instance_id: str, events: list[JsonDict]) -> None:
        if not events:
            return
        row = db.execute(
            "SELECT COALESCE(MAX(position), -1) FROM history WHERE instance_id = ?", (instance_id,)
        ).fetchone()
        start = int(row[0]) + 1
        db.executemany(
            "INSERT INTO history (instance_id, position, event) VALUES (?, ?, ?)",
            [(instance_id, start + offset, json.dumps(event)) for offset, event in enumerate(events)],
        )

    def load_history(self, instance_id: str) -> list[JsonDict]:
        rows = self._db.execute(
            "SELECT event FROM history WHERE instance_id = ? ORDER BY position", (instance_id,)
        ).fetchall()
        return [json.loads(row["event"]) for row in rows]

    def enqueue(self, instance_id: str, execution_id: str | None, event: JsonDict) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO inbox (instance_id, execution_id, event) VALUES (?, ?, ?)",
                (instance_id, execution_id, json.dumps(event)),
            )

    def inbox(self, instance_id: str) -> list[InboxItem]:
        rows = self._db.execute(
            "SELECT seq, execution_id, event FROM inbox WHERE instance_id = ? ORDER BY seq", (instance_id,)
        ).fetchall()
        return [InboxItem(row["seq"], row["execution_id"], json.loads(row["event"])) for row in rows]

    def drop_inbox(self, seqs: Iterable[int]) -> None:
        with self._transaction() as db:
            db.executemany("DELETE FROM inbox WHERE seq = ?", [(seq,) for seq in seqs])

    def instances_with_inbox(self) -> list[str]:
        rows = self._db.execute("SELECT DISTINCT instance_id FROM inbox").fetchall()
        return [row["instance_id"] for row in rows]

    # ---- episodes --------------------------------------------------------------------------

    def commit_episode(self, write: EpisodeWrite) -> None:
        record = write.instance
        instance_id = record.instance_id
        with self._transaction() as db:
            db.executemany("DELETE FROM inbox WHERE seq = ?", [(seq,) for seq in write.consumed_inbox])
            if write.restart_history:
                carried = self._restart_execution(db, record, write)
            else:
                self._append_history(db, instance_id, write.new_history)
                carried = []
            self._write_instance(db, record)
            if write.finished or write.restart_history:
                db.execute("DELETE FROM activities WHERE instance_id = ?", (instance_id,))
                db.execute("DELETE FROM timers WHERE instance_id = ?", (instance_id,))
            if write.finished:
                db.execute("DELETE FROM inbox WHERE instance_id = ?", (instance_id,))
                return
            for event in carried:
                db.execute(
                    "INSERT INTO inbox (instance_id, execution_id, event) VALUES (?, NULL, ?)",
                    (instance_id, event),
                )
            db.executemany(
                "INSERT OR REPLACE INTO activities (instance_id, execution_id, task_id, name, input)"
                " VALUES (?, ?, ?, ?, ?)",
                [(a.instance_id, a.execution_id, a.task_id, a.name, a.input) for a in write.activities],
            )
            db.executemany(
                "INSERT OR REPLACE INTO timers (instance_id, execution_id, timer_id, fire_at)"
                " VALUES (?, ?, ?, ?)",
                [(t.instance_id, t.execution_id, t.timer_id, t.fire_at) for t in write.timers],
            )
            db.executemany(
                "DELETE FROM timers WHERE instance_id = ? AND execution_id = ? AND timer_id = ?",
                [(instance_id, record.execution_id, timer_id) for timer_id in write.cancelled_timers],
            )

    @staticmethod
    def _restart_execution(db: sqlite3.Connection, record: InstanceRecord, write: EpisodeWrite) -> list[str]:
        """Start a fresh history for continue-as-new; return the undelivered events to carry over.

        External events that have not reached the old execution belong to the instance, not to an
        execution, so they move to the new one, queued after its ExecutionStarted.
        """
        instance_id = record.instance_id
        db.execute("DELETE FROM history WHERE instance_id = ?", (instance_id,))
        rows = db.execute(
            "SELECT seq, event FROM inbox WHERE instance_id = ? AND execution_id IS NULL ORDER BY seq",
            (instance_id,),
        ).fetchall()
        db.execute("DELETE FROM inbox WHERE instance_id = ?", (instance_id,))
        if write.next_execution_start is not None:
            db.execute(
                "INSERT INTO inbox (instance_id, execution_id, event) VALUES (?, ?, ?)",
                (instance_id, record.execution_id, json.dumps(write.next_execution_start)),
            )
        return [row["event"] for row in rows]

    # ---- pending work ----------------------------------------------------------------------

    def complete_activity(self, activity: PendingActivity, outcome: JsonDict) -> bool:
        """Turn a finished activity into an inbox event, once; False when nobody waits for it."""
        where = ("activities", "task_id", activity.task_id)
        return self._settle(where, activity.instance_id, activity.execution_id, outcome)

    def fire_timer(self, timer: PendingTimer, fired: JsonDict) -> bool:
        where = ("timers", "timer_id", timer.timer_id)
        return self._settle(where, timer.instance_id, timer.execution_id, fired)

    def _settle(
        self, pending: tuple[str, str, int], instance_id: str, execution_id: str, event: JsonDict
    ) -> bool:
        """Delete one pending row and queue its event, in one transaction: a restart never
        delivers it twice, and a purged or finished instance gets nothing."""
        table, key, value = pending
        with self._transaction() as db:
            deleted = db.execute(
                f"DELETE FROM {table} WHERE instance_id = ? AND execution_id = ? AND {key} = ?",  # noqa: S608 - fixed names
                (instance_id, execution_id, value),
            ).rowcount
            if not deleted:
                return False
            db.execute(
                "INSERT INTO inbox (instance_id, execution_id, event) VALUES (?, ?, ?)",
                (instance_id, execution_id, json.dumps(event)),
            )
            return True

    def pending_activities(self) -> list[PendingActivity]:
        rows = self._db.execute("SELECT * FROM activities ORDER BY instance_id, task_id").fetchall()
        return [
            PendingActivity(
                row["instance_id"], row["execution_id"], row["task_id"], row["name"], row["input"]
            )
            for row in rows
        ]

    def pending_timers(self) -> list[PendingTimer]:
        rows = self._db.execute("SELECT * FROM timers ORDER BY fire_at").fetchall()
        return [
            PendingTimer(row["instance_id"], row["execution_id"], row["timer_id"], row["fire_at"])
            for row in rows
        ]

    def next_occurrence(self, function_name: str) -> str | None:
        row = self._db.execute(
            "SELECT next_occurrence FROM schedule_monitor WHERE function_name = ?", (function_name,)
        ).fetchone()
        return None if row is None else str(row["next_occurrence"])

    def set_next_occurrence(self, function_name: str, moment: str) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO schedule_monitor (function_name, next_occurrence) VALUES (?, ?)",
                (function_name, moment),
            )
