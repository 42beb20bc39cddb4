"""The Azure Functions entry point: builds the app and registers one blueprint per concern."""

import azure.durable_functions as df
import azure.functions as func

from activities import jobs as job_activities
from activities import upstream as upstream_activities
from activities import webhooks as webhook_activities
from api import console, cors, health, manage, models, openapi, usage, video_queries, videos
from maintenance import retention
from orchestrators import budget_threshold, generate_video

# The gateway authenticates callers itself (app keys), so routes need no function keys.
app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

for blueprint in (
    console.bp,
    cors.bp,
    health.bp,
    manage.bp,
    models.bp,
    openapi.bp,
    usage.bp,
    videos.bp,
    video_queries.bp,
    generate_video.bp,
    budget_threshold.bp,
    upstream_activities.bp,
    job_activities.bp,
    webhook_activities.bp,
    retention.bp,
):
    app.register_functions(blueprint)
