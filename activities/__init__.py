"""Everything that does I/O: model providers, tools, notifications, the store."""
