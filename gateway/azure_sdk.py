"""The Azure SDK names the stores use, imported on first use instead of with the stores.

azure-core and azure-data-tables cost a cold worker tens of milliseconds to import, and a worker
imports every blueprint (so every store module) to index its functions before any of them runs.
Stores refer to `sdk.ResourceNotFoundError`, `sdk.UpdateMode.REPLACE`, ... through this module: the
SDK is imported the first time such a name is looked up, at the first storage call. Type checkers
see the real names (the imports below).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from azure.core import MatchConditions as MatchConditions
    from azure.core.exceptions import HttpResponseError as HttpResponseError
    from azure.core.exceptions import ResourceExistsError as ResourceExistsError
    from azure.core.exceptions import ResourceModifiedError as ResourceModifiedError
    from azure.core.exceptions import ResourceNotFoundError as ResourceNotFoundError
    from azure.core.exceptions import ServiceRequestError as ServiceRequestError
    from azure.core.exceptions import ServiceResponseError as ServiceResponseError
    from azure.data.tables import EdmType as EdmType
    from azure.data.tables import EntityProperty as EntityProperty
    from azure.data.tables import TableTransactionError as TableTransactionError
    from azure.data.tables import UpdateMode as UpdateMode

_HOMES = {
    "MatchConditions": "azure.core",
    "HttpResponseError": "azure.core.exceptions",
    "ResourceExistsError": "azure.core.exceptions",
    "ResourceModifiedError": "azure.core.exceptions",
    "ResourceNotFoundError": "azure.core.exceptions",
    "ServiceRequestError": "azure.core.exceptions",
    "ServiceResponseError": "azure.core.exceptions",
    "TableTransactionError": "azure.data.tables",
    "EdmType": "azure.data.tables",
    "EntityProperty": "azure.data.tables",
    "UpdateMode": "azure.data.tables",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # looked up once
    return value
