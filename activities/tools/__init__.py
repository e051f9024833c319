"""Tools a task may call: one registry, typed functions with JSON schemas."""
