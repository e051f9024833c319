"""When a schedule fires: parsing cron / interval / text / one-time specs, and saying it
in words.

Users write "8am daily" or `0 9 * * 1-5`; Temporal wants cron strings, intervals or
calendar specs. Everything is normalised here into one `ParsedSpec` (a cron
expression, an interval, or a single instant), validated up front so a bad spec is a
422 naming the problem rather than a Temporal error, and described for people
("Daily at 9:00", "Every Mon, Tue, Wed at 14:00", "Monthly on day 15 at 8:00").
Cron is 5-field (minute hour day-of-month month day-of-week) with 0 = Sunday, which is
also how Temporal reads day-of-week.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from workflows.durations import format_duration, parse_duration

DAY_NAMES = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
_DAYS = {
    "sunday": 0, "sun": 0, "monday": 1, "mon": 1, "tuesday": 2, "tue": 2, "tues": 2,
    "wednesday": 3, "wed": 3, "thursday": 4, "thu": 4, "thur": 4, "thurs": 4,
    "friday": 5, "fri": 5, "saturday": 6, "sat": 6,
}  # fmt: skip
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}
MIN_INTERVAL = timedelta(seconds=1)


class SpecError(ValueError):
    """The spec is invalid; the message says what is wrong (becomes a 422)."""


@dataclass(frozen=True)
class ParsedSpec:
    kind: str  # "cron" | "every" | "at"
    cron: str | None = None
    every: timedelta | None = None
    at: datetime | None = None  # aware, UTC

    @property
    def expression(self) -> str:
        if self.cron is not None:
            return self.cron
        if self.every is not None:
            return f"every {format_duration(self.every)}"
        assert self.at is not None
        return self.at.isoformat()


# ---------------------------------------------------------------- validation


def check_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SpecError(
            f"unknown time zone {name!r}: use an IANA name like 'Europe/Paris'"
        ) from None


def parse_cron(expr: str) -> str:
    """Validate a 5-field cron expression; returns it normalised (single spaces)."""
    fields = expr.split()
    if len(fields) != 5:
        raise SpecError(
            f"invalid cron {expr!r}: expected 5 fields (minute hour day-of-month month "
            f"day-of-week), got {len(fields)}"
        )
    norm = " ".join(fields)
    if not croniter.is_valid(norm):
        raise SpecError(f"invalid cron {expr!r}: a field is out of range or malformed")
    return norm


def parse_every(value: str | int | float) -> timedelta:
    try:
        every = parse_duration(value)
    except ValueError as e:
        raise SpecError(str(e)) from None
    if every < MIN_INTERVAL:
        raise SpecError(f"interval {value!r} is too short: the minimum is 1s")
    return every


def parse_at(value: str | datetime, tz: str = "UTC", now: datetime | None = None) -> datetime:
    """An ISO 8601 instant (naive means in `tz`), which must be in the future."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise SpecError(
                f"invalid time {value!r}: use ISO 8601, e.g. 2030-01-31T09:00"
            ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=check_timezone(tz))
    moment = moment.astimezone(UTC)
    if moment <= (now or datetime.now(UTC)):
        raise SpecError(f"time {moment.isoformat()} is in the past")
    return moment


# ---------------------------------------------------------------- text


def _time_of_day(text: str) -> tuple[int, int] | None:
    """'9', '9:30', '9am', '5:15 pm', '14:00', 'noon', 'midnight' -> (hour, minute)."""
    text = text.strip().lower()
    if text in ("noon", "midday"):
        return 12, 0
    if text == "midnight":
        return 0, 0
    m = re.fullmatch(r"(\d{1,2})(?::(\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?", text)
    if not m:
        return None
    hour, minute, ampm = int(m.group(1)), int(m.group(2) or 0), m.group(3)
    if ampm:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ampm.startswith("p") else 0)
    if hour > 23 or minute > 59:
        return None
    return hour, minute


_TIME = r"(?:\d{1,2}(?::\d{2})?\s*(?:am|pm|a\.m\.|p\.m\.)?|noon|midday|midnight)"
_DAY = "|".join(sorted(_DAYS, key=len, reverse=True))


def _days(text: str) -> str | None:
    """'weekday(s)', 'weekend', 'monday and friday', 'mon, wed' -> cron day-of-week."""
    text = text.strip().lower()
    if text in ("weekday", "weekdays"):
        return "1-5"
    if text in ("weekend", "weekends", "weekend day", "weekend days"):
        return "0,6"
    parts = [p for p in re.split(r"\s*(?:,|\band\b|&|/)\s*", text) if p]
    found = []
    for p in parts:
        p = p[:-1] if p.endswith("s") and p[:-1] in _DAYS else p
        if p not in _DAYS:
            return None
        found.append(_DAYS[p])
    return ",".join(str(d) for d in sorted(set(found))) if found else None


def parse_text(text: str) -> ParsedSpec:
    """Natural-language recurrence -> cron or interval. Raises SpecError if not understood."""
    raw = text
    t = re.sub(r"\s+", " ", text.strip().lower()).rstrip(".")
    t = re.sub(r"^(?:run |repeat )", "", t)

    def cron(minute: int, hour: int, dom: str = "*", dow: str = "*") -> ParsedSpec:
        return ParsedSpec("cron", cron=f"{minute} {hour} {dom} * {dow}")

    # every N units / every unit / hourly / every other hour
    m = re.fullmatch(r"every (\d+|other )?\s*(second|minute|hour|day|week)s?", t)
    if m:
        n_text = (m.group(1) or "1").strip()
        n = 2 if n_text == "other" else int(n_text)
        return ParsedSpec("every", every=parse_every(n * _UNIT_SECONDS[m.group(2)]))
    if t in ("hourly", "every hour"):
        return ParsedSpec("cron", cron="0 * * * *")
    if t in ("every minute", "minutely"):
        return ParsedSpec("cron", cron="* * * * *")
    if t in ("daily", "every day"):
        return cron(0, 0)
    if t in ("weekly", "every week"):
        return cron(0, 0, dow="1")
    if t in ("monthly", "every month"):
        return cron(0, 0, dom="1")

    # "<time> daily" / "daily at <time>" / "every day at <time>" / "at <time> every day"
    m = re.fullmatch(rf"(?:at )?({_TIME}) (?:daily|every day|each day)", t) or re.fullmatch(
        rf"(?:daily|every day|each day) (?:at )?({_TIME})", t
    )
    if m and (hm := _time_of_day(m.group(1))):
        return cron(hm[1], hm[0])

    # "every weekday at 9:30", "mondays at 14:00", "every monday and friday at 5pm",
    # "at 9 on weekdays", "weekdays 9am"
    day_words = (
        rf"(?:weekdays?|weekends?|weekend days?|(?:{_DAY})s?(?:\s*(?:,|and|&)\s*(?:{_DAY})s?)*)"
    )
    m = re.fullmatch(rf"(?:every |on )?({day_words}) (?:at )?({_TIME})", t) or re.fullmatch(
        rf"(?:at )?({_TIME}) (?:every |on )({day_words})", t
    )
    if m:
        a, b = m.group(1), m.group(2)
        days_text, time_text = (a, b) if _time_of_day(b) else (b, a)
        dow, hm = _days(days_text), _time_of_day(time_text)
        if dow and hm:
            return cron(hm[1], hm[0], dow=dow)

    # "monthly on the 15th at 8:00", "on the 1st of every month at 9am", "every month on day 15"
    m = re.fullmatch(
        rf"(?:monthly|every month) on (?:the |day )?(\d{{1,2}})(?:st|nd|rd|th)?(?: at ({_TIME}))?",
        t,
    ) or re.fullmatch(
        rf"on the (\d{{1,2}})(?:st|nd|rd|th)? of (?:every|each) month(?: at ({_TIME}))?", t
    )
    if m:
        day = int(m.group(1))
        hm = _time_of_day(m.group(2)) if m.group(2) else (0, 0)
        if 1 <= day <= 31 and hm:
            return cron(hm[1], hm[0], dom=str(day))

    # "every hour at :15" / "hourly at 15"
    m = re.fullmatch(r"(?:hourly|every hour) at :?(\d{1,2})", t)
    if m and int(m.group(1)) < 60:
        return ParsedSpec("cron", cron=f"{int(m.group(1))} * * * *")

    raise SpecError(
        f"cannot understand schedule text {raw!r}: try e.g. '8am daily', 'every weekday at 9:30', "
        "'every 2 hours', 'mondays at 14:00', or give a cron expression"
    )


# ---------------------------------------------------------------- description


def _hm(hour: str, minute: str) -> str:
    return f"{int(hour)}:{int(minute):02d}"


def _expand_dow(field: str) -> list[int] | None:
    out: set[int] = set()
    for part in field.split(","):
        m = re.fullmatch(r"(\d)(?:-(\d))?", part)
        if not m:
            return None
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo or hi > 7:
            return None
        out.update(d % 7 for d in range(lo, hi + 1))
    return sorted(out)


def describe_cron(expr: str) -> str:
    """Words for a cron expression: short house phrases ("Daily at 9:00", "Every weekday
    at 8:30") for the common shapes, `cron-descriptor` for everything else."""
    fields = expr.split()
    if len(fields) != 5:
        return _described(expr)
    minute, hour, dom, month, dow = fields
    if month != "*":
        return _described(expr)
    simple_time = minute.isdigit() and hour.isdigit()
    if expr == "* * * * *":
        return "Every minute"
    m = re.fullmatch(r"\*/(\d+)", minute)
    if m and hour == dom == dow == "*":
        return f"Every {int(m.group(1))} minutes"
    if minute.isdigit() and hour == "*" and dom == dow == "*":
        return "Hourly" if int(minute) == 0 else f"Hourly at :{int(minute):02d}"
    m = re.fullmatch(r"\*/(\d+)", hour)
    if m and minute.isdigit() and dom == dow == "*":
        suffix = "" if int(minute) == 0 else f" at :{int(minute):02d}"
        return f"Every {int(m.group(1))} hours{suffix}"
    if not simple_time:
        return _described(expr)
    at = _hm(hour, minute)
    if dom == "*" and dow == "*":
        return f"Daily at {at}"
    if dom == "*":
        days = _expand_dow(dow)
        if days is None:
            return _described(expr)
        if days == [1, 2, 3, 4, 5]:
            return f"Every weekday at {at}"
        if days == [0, 6]:
            return f"Every Sat, Sun at {at}"
        return f"Every {', '.join(DAY_NAMES[d] for d in days)} at {at}"
    if dow == "*" and dom.isdigit():
        return f"Monthly on day {int(dom)} at {at}"
    return _described(expr)


def _described(expr: str) -> str:
    """`cron-descriptor`'s sentence (24-hour clock, 0 = Sunday); the expression if it fails.

    Imported here, not at the top: it costs ~0.1 s and the CLI imports this module."""
    from cron_descriptor import ExpressionDescriptor, Options

    options = Options()
    options.use_24hour_time_format = True
    options.day_of_week_start_index_zero = True
    try:
        return str(ExpressionDescriptor(expr, options).get_description())
    except Exception:  # the expression was validated already; never fail a listing on words
        return expr


def describe_every(every: timedelta) -> str:
    seconds = int(every.total_seconds())
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            n = seconds // size
            return f"Every {unit}" if n == 1 else f"Every {n} {unit}s"
    return "Every second" if seconds == 1 else f"Every {seconds} seconds"


def describe(spec: ParsedSpec, tz: str = "UTC") -> str:
    if spec.cron is not None:
        return describe_cron(spec.cron)
    if spec.every is not None:
        return describe_every(spec.every)
    assert spec.at is not None
    local = spec.at.astimezone(check_timezone(tz))
    return f"Once at {local:%Y-%m-%d %H:%M} {tz}"


def parse_spec(
    *,
    cron: str | None = None,
    every: str | int | float | None = None,
    text: str | None = None,
    at: str | datetime | None = None,
    timezone: str = "UTC",
    now: datetime | None = None,
) -> ParsedSpec:
    """Exactly one of cron / every / text / at."""
    given = [k for k, v in (("cron", cron), ("every", every), ("text", text), ("at", at))
             if v not in (None, "")]  # fmt: skip
    if len(given) != 1:
        raise SpecError(
            "give exactly one of 'cron', 'every', 'text' or 'at'"
            + (f" (got {', '.join(given)})" if given else "")
        )
    check_timezone(timezone)
    if cron:
        return ParsedSpec("cron", cron=parse_cron(cron))
    if every not in (None, ""):
        assert every is not None
        return ParsedSpec("every", every=parse_every(every))
    if text:
        return parse_text(text)
    assert at is not None
    return ParsedSpec("at", at=parse_at(at, timezone, now))
