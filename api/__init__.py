"""HTTP blueprints: the public API (`/api/v1/...`) and operations endpoints.

Loading them checks the settings: one that cannot work stops the function app from indexing,
with the setting's name in the host's log, rather than answering every request with a 500.
"""

from gateway.settings import check_settings

check_settings()
