"""Timer trigger: the retention sweep (see gateway.retention)."""

from __future__ import annotations

import time

import azure.durable_functions as df
import azure.functions as func

from gateway.clients import get_job_store, get_video_assets
from gateway.retention import RetentionSweeper
from gateway.settings import get_settings

bp = df.Blueprint()


@bp.timer_trigger(schedule="%SWEEP_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def sweep_expired_videos(timer: func.TimerRequest) -> None:
    sweeper = RetentionSweeper(get_job_store(), get_video_assets(), get_settings().video_retention_days)
    sweeper.sweep(time.time())
