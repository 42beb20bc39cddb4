"""The model catalog as OpenAI's Models API shows it: `GET /v1/models` and `GET /v1/models/{id}`."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df
import azure.functions as func

from api.auth import authenticate_app
from api.http import api_errors, json_response
from gateway.catalog import CatalogModel
from gateway.errors import NotFound
from gateway.settings import get_settings
from gateway.video_options import OPTIONS

bp = df.Blueprint()

# The catalog keeps no creation times; OpenAI's field is required, so it reads 0 ("not known").
CREATED_UNKNOWN = 0


def model_object(model: CatalogModel) -> dict[str, Any]:
    """OpenAI's Model object plus what an app needs to make a valid request for it."""
    return {
        "id": model.id,
        "object": "model",
        "created": CREATED_UNKNOWN,
        "owned_by": model.provider,
        "sizes": list(model.sizes),
        "seconds": list(model.seconds),
        "image_input": model.image_input,
        "remix": model.remix,
        "price_per_second": model.price_per_second(),
        # Each option it takes, as the JSON Schema of its value (a choice narrowed to its values).
        "options": {name: OPTIONS[name].schema(choices) for name, choices in model.options.items()},
    }


@bp.route(route="v1/models", methods=["GET"])
@api_errors
def list_models(req: func.HttpRequest) -> func.HttpResponse:
    authenticate_app(req)
    models = get_settings().catalog.values()
    return json_response({"object": "list", "data": [model_object(model) for model in models]})


@bp.route(route="v1/models/{model_id}", methods=["GET"])
@api_errors
def retrieve_model(req: func.HttpRequest) -> func.HttpResponse:
    authenticate_app(req)
    model_id = req.route_params["model_id"]
    model = get_settings().catalog.get(model_id)
    if model is None:
        raise NotFound(f"The model '{model_id}' does not exist.", code="model_not_found", param="model")
    return json_response(model_object(model))
