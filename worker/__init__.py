"""The worker process: Temporal client, registration, tuning and shutdown."""
