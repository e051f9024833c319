"""Shared process-level plumbing: settings and logging.

The worker, the gateway and the CLI are three processes configured the same way;
this package is the one place that configuration lives, so none of them has to
import another's internals to read a setting.
"""
