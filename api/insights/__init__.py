"""Run insights: stats over many runs, run comparison, and regression health.

Runs live only in Temporal, so every figure here comes from visibility (the search
attributes each run sets when it ends) or from a run's own state; nothing is stored.
The computation (`metrics`, `stats`, `health`, `compare`) is pure; `records` reads
visibility and `service` ties them to the gateway.
"""
