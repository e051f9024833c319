"""The SQL store: definitions and their immutable versions (runs live in Temporal)."""
