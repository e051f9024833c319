"""The `duratask` command: dev stack, definitions, runs, schedules."""
