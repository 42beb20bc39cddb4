"""Activity blueprints: every piece of I/O the orchestrators need."""
