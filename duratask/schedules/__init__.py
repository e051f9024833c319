"""Schedules: duratask jobs on Temporal Schedules (see docs/schedules.md)."""
