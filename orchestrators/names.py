"""Orchestrator and external-event names, shared by the orchestrators and their starters."""

GENERATE_VIDEO = "generate_video"
CANCEL_EVENT = "cancel"
