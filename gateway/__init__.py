"""The gateway's core: settings, storage, the upstream client and the job model.

Nothing here knows about Azure Functions; the blueprints in `api/`, `orchestrators/` and
`activities/` adapt it to triggers.
"""
