"""CLI messages are never wrapped at the terminal width (80 columns off a terminal)."""

from __future__ import annotations

import pytest
import typer

from cli import client


def test_a_long_error_stays_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    path = "/tmp/" + "deep/" * 30 + "b.yaml"
    with pytest.raises(typer.Exit):
        client.die(f"{path}: give exactly one of schedule / cron / every / text / at")
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "give exactly one of schedule" in err
