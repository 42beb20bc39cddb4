"""Orchestrator and external-event names, shared by the orchestrators and their starters."""

GENERATE_VIDEO = "generate_video"
ANNOUNCE_BUDGET_THRESHOLD = "announce_budget_threshold"
CANCEL_EVENT = "cancel"
