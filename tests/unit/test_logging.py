"""Loggers made at import time (before `configure_logging`) still obey its level and
its redaction: a module's logger must not freeze structlog's defaults."""

from __future__ import annotations

import pytest
import structlog

from duratask.logging import configure_logging, get_logger

EARLY = get_logger("tests.early", component="unit")  # like a module-level logger


def test_a_logger_made_before_configuration_filters_and_redacts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    try:
        configure_logging("WARNING")
        EARLY.info("chatty detail")
        EARLY.warning("provider refused", api_key="sk-live-123", status=401)
        captured = capsys.readouterr()
        err = captured.out + captured.err
        assert "chatty detail" not in err
        assert "provider refused" in err and "status=401" in err and "component=unit" in err
        assert "sk-live-123" not in err and "api_key=***" in err
    finally:
        structlog.reset_defaults()
