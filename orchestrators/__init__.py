"""Orchestrator blueprints. Orchestrators do no I/O and read time only from the context."""
