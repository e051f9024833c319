"""The web console: server-rendered pages under `/ui`, served by the gateway itself.

Pages call the same services as the API (runs, definitions, schedules, approvals,
thread, insights) with the signed-in principal, so scopes apply exactly as on the API.
No Node toolchain and no CDN: Jinja2 templates and a few vendored, pinned JS files.
"""

from console.routes import mount

__all__ = ["mount"]
