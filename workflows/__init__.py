"""The definition language and the run workflow.

Everything here runs inside the Temporal workflow sandbox or is imported by it, so
it stays deterministic and import-light: pydantic models, pure functions, no I/O.
"""
