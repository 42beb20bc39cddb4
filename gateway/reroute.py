"""Moving a job to its model's next route while no provider has accepted it.

A model may name several routes (provider accounts) in the catalog. A job starts on the first one
that can make it; when that route's provider certainly made nothing of the create (it could not
be reached, said it is unavailable, refused the gateway's access or the model, or its adapter is
missing), the job moves to the next route that can make it and is not cooling down. Once a
provider accepts, the job is bound to it. Moves only go forward, so a job tries each route once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gateway.catalog import CatalogModel, Route
from gateway.errors import UpstreamAmbiguousError, UpstreamError, UpstreamRejectedError, UpstreamThrottled
from gateway.jobs import Job

# Answers to a create that say nothing was made there: the gateway's own access or the model is
# refused (401, 403, 404: a retired or unknown model), or the service is unavailable (503: it
# took nothing; a 500 or a lost answer may have made a job, so those never move a job).
_UNTOUCHED_STATUSES = frozenset({401, 403, 404, 503})
PROVIDER_UNAVAILABLE = "provider_unavailable"


def untouched(error: UpstreamError) -> bool:
    """True when this failed create certainly made nothing at the provider."""
    if isinstance(error, UpstreamThrottled):
        return False  # waited out at the same route, up to the job's deadline
    if isinstance(error, UpstreamRejectedError) and error.code == PROVIDER_UNAVAILABLE:
        return True
    if isinstance(error, UpstreamRejectedError | UpstreamAmbiguousError):
        return error.status in _UNTOUCHED_STATUSES
    from gateway.providers.transport import never_sent  # lazy: requests stays off cold starts

    return error.status == 503 or never_sent(error)


def next_route(
    job: Job, catalog: Mapping[str, CatalogModel], cooling_down: Callable[[str], bool] = lambda _: False
) -> Route | None:
    """The route after the job's current one that can make it and is not cooling down, or None.

    A remix never moves: its source video exists only at the provider that made it."""
    if job.remixed_from_video_id is not None:
        return None
    routes = _fitting(job, catalog)
    current = next(
        (index for index, route in enumerate(routes) if (route.provider, route.provider_model) == _on(job)),
        None,
    )
    later = routes if current is None else routes[current + 1 :]
    for route in later:
        if (route.provider, route.provider_model) != _on(job) and not cooling_down(route.provider):
            return route
    return None


def has_alternatives(job: Job, catalog: Mapping[str, CatalogModel]) -> bool:
    """Whether the job's model has more than one route that can make it (so running out of
    routes is worth its own failure code)."""
    return job.remixed_from_video_id is None and len(_fitting(job, catalog)) > 1


def _fitting(job: Job, catalog: Mapping[str, CatalogModel]) -> tuple[Route, ...]:
    model = catalog.get(job.model)
    if model is None:
        return ()
    return model.routes_for(job.size, job.seconds, image=job.reference_blob is not None, options=job.options)


def _on(job: Job) -> tuple[str | None, str | None]:
    return job.provider, job.provider_model
