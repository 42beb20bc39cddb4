"""HTTP blueprints: the public API (`/api/v1/...`) and operations endpoints."""
