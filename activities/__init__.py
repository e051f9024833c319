"""Activity definitions only: model calls, tools, notifications, and the store reads a run makes.

The store and the schedule service they call live in `duratask/` (shared with the
gateway and the CLI); this package holds what the worker registers as activities.
"""
