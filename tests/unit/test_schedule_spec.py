"""The schedule text parser and description generator, over tables of cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from duratask.schedules.spec import (
    ParsedSpec,
    SpecError,
    describe,
    describe_cron,
    parse_spec,
    parse_text,
)

TEXT_CASES = [
    ("8am daily", "0 8 * * *"),
    ("daily at 8:15", "15 8 * * *"),
    ("every day at 5pm", "0 17 * * *"),
    ("at noon every day", "0 12 * * *"),
    ("every weekday at 9:30", "30 9 * * 1-5"),
    ("weekdays at 9am", "0 9 * * 1-5"),
    ("mondays at 14:00", "0 14 * * 1"),
    ("every monday and friday at 5pm", "0 17 * * 1,5"),
    ("Every Tuesday, Thursday at 7:45 am", "45 7 * * 2,4"),
    ("weekends at 10", "0 10 * * 0,6"),
    ("sundays at midnight", "0 0 * * 0"),
    ("at 9 on weekdays", "0 9 * * 1-5"),
    ("monthly on the 15th at 8:00", "0 8 15 * *"),
    ("on the 1st of every month at 9am", "0 9 1 * *"),
    ("hourly", "0 * * * *"),
    ("every hour at :15", "15 * * * *"),
    ("daily", "0 0 * * *"),
    ("weekly", "0 0 * * 1"),
]

INTERVAL_CASES = [
    ("every 2 hours", timedelta(hours=2)),
    ("every 15 minutes", timedelta(minutes=15)),
    ("every minute", timedelta(minutes=1)),
    ("every 30 seconds", timedelta(seconds=30)),
    ("every other day", timedelta(days=2)),
    ("every 3 days", timedelta(days=3)),
]

BAD_TEXT = ["whenever you feel like it", "every blue moon", "mondays at 25:00", "13pm daily", ""]

DESCRIPTIONS = [
    ("0 9 * * *", "Daily at 9:00"),
    ("0 14 * * 1,2,3", "Every Mon, Tue, Wed at 14:00"),
    ("0 14 * * 1-3", "Every Mon, Tue, Wed at 14:00"),
    ("0 8 15 * *", "Monthly on day 15 at 8:00"),
    ("30 9 * * 1-5", "Every weekday at 9:30"),
    ("0 10 * * 0,6", "Every Sat, Sun at 10:00"),
    ("0 10 * * 7", "Every Sun at 10:00"),
    ("*/15 * * * *", "Every 15 minutes"),
    ("* * * * *", "Every minute"),
    ("0 * * * *", "Hourly"),
    ("5 * * * *", "Hourly at :05"),
    ("0 */2 * * *", "Every 2 hours"),
    # other shapes: cron-descriptor's sentence
    ("0 9 1-7 * 1", "At 09:00, between day 1 and 7 of the month, or on Monday"),
    ("0 9 * 1 *", "At 09:00, only in January"),
    (
        "0,30 9-17 * * 1-5",
        "At 0 and 30 minutes past the hour, between 09:00 and 17:59, Monday through Friday",
    ),
]


@pytest.mark.parametrize(("text", "cron"), TEXT_CASES)
def test_text_to_cron(text: str, cron: str) -> None:
    spec = parse_text(text)
    assert spec == ParsedSpec("cron", cron=cron)


@pytest.mark.parametrize(("text", "every"), INTERVAL_CASES)
def test_text_to_interval(text: str, every: timedelta) -> None:
    assert parse_text(text) == ParsedSpec("every", every=every)


@pytest.mark.parametrize("text", BAD_TEXT)
def test_text_not_understood(text: str) -> None:
    with pytest.raises(SpecError, match="cannot understand"):
        parse_text(text)


@pytest.mark.parametrize(("cron", "words"), DESCRIPTIONS)
def test_describe_cron(cron: str, words: str) -> None:
    assert describe_cron(cron) == words


@pytest.mark.parametrize(
    ("every", "words"),
    [("15m", "Every 15 minutes"), ("2s", "Every 2 seconds"), ("1h", "Every hour"),
     ("90m", "Every 90 minutes"), ("2d", "Every 2 days"), ("1s", "Every second")],
)  # fmt: skip
def test_describe_every(every: str, words: str) -> None:
    assert describe(parse_spec(every=every)) == words


def test_describe_text_goes_through_cron() -> None:
    assert describe(parse_spec(text="every weekday at 9:30")) == "Every weekday at 9:30"
    assert describe(parse_spec(text="every 2 hours")) == "Every 2 hours"


def test_at_is_converted_to_utc_and_described_in_its_zone() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    spec = parse_spec(at="2030-06-01T09:00", timezone="Europe/Paris", now=now)
    assert spec.at == datetime(2030, 6, 1, 7, 0, tzinfo=UTC)
    assert describe(spec, "Europe/Paris") == "Once at 2030-06-01 09:00 Europe/Paris"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cron": "0 9 * *"}, "expected 5 fields"),
        ({"cron": "61 9 * * *"}, "invalid cron"),
        ({"cron": "0 9 * * 8"}, "invalid cron"),
        ({"cron": "0 0 9 * * *"}, "expected 5 fields"),
        ({"cron": "0 9 * * *", "timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"every": "soon"}, "invalid duration"),
        ({"every": "0s"}, "too short"),
        ({"at": "2001-01-01T00:00:00Z"}, "in the past"),
        ({"at": "next tuesday"}, "ISO 8601"),
        ({"text": "sometime"}, "cannot understand"),
        ({}, "exactly one"),
        ({"cron": "0 9 * * *", "every": "1h"}, "exactly one"),
    ],
)
def test_invalid_specs(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        parse_spec(**kwargs)  # type: ignore[arg-type]
