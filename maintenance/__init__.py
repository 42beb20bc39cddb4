"""Scheduled housekeeping blueprints."""
