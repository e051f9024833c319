"""The FastAPI gateway: a thin HTTP front over Temporal and the definition store."""
