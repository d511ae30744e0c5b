"""A campaign's calling window: `call_hours_start`–`call_hours_end` on `call_days`, in the campaign's time zone.

Times are wall-clock times in the campaign's IANA zone, so daylight-saving changes move the window in UTC as
they move it on the callee's clock. Rules:

- The window opens at `start` on each listed day and closes at `end` the same day.
- `end` earlier than `start` (e.g. 20:00–02:00) crosses midnight: it opens on a listed day and closes at `end`
  the next day, whether or not that next day is listed.
- `end` equal to `start` means the whole day: open from `start` for 24 hours.
- A wall time that does not exist (inside a spring-forward gap) is moved forward by the gap (02:30 → 03:30);
  an ambiguous one (in a fall-back hour) is its first occurrence.
- No listed day: the window never opens.

Everything here is pure: it takes the instant to judge (an aware datetime) and answers in UTC.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_DAY_INDEX = {name.lower(): i for i, name in enumerate(WEEKDAYS)} | {name[:3].lower(): i for i, name in
                                                                    enumerate(WEEKDAYS)}
_SEARCH_DAYS = 9  # a window opens at least once a week when any day is listed


def parse_clock(text: str) -> time:
    """`HH:MM` or `HH:MM:SS` as a time of day."""
    parts = [int(part) for part in text.strip().split(":")]
    while len(parts) < 3:
        parts.append(0)
    return time(parts[0], parts[1], parts[2])


def _utc(local: datetime) -> datetime:
    """A wall-clock time in its zone as a UTC instant (fold 0: a time in a spring-forward gap lands the gap's
    length later, 02:30 → 03:30; an ambiguous fall-back time is its first occurrence)."""
    return local.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class CallingWindow:
    zone: ZoneInfo
    start: time
    end: time
    days: frozenset[int]  # 0 = Monday

    @classmethod
    def of(cls, zone: str, start: str, end: str, days: Iterable[str]) -> CallingWindow:
        """From a campaign's stored fields (unknown day names are ignored)."""
        indexes = frozenset(_DAY_INDEX[d.strip().lower()] for d in days if d.strip().lower() in _DAY_INDEX)
        return cls(ZoneInfo(zone), parse_clock(start), parse_clock(end), indexes)

    def _span(self, day: date) -> tuple[datetime, datetime]:
        """The UTC instants the window opens and closes for an opening on local `day`."""
        opens = datetime.combine(day, self.start, tzinfo=self.zone)
        closing_day = day if self.end > self.start else day + timedelta(days=1)
        closes = datetime.combine(closing_day, self.end, tzinfo=self.zone)
        return _utc(opens), _utc(closes)

    def is_open(self, at: datetime) -> bool:
        """Whether calls may be placed at instant `at`."""
        today = at.astimezone(self.zone).date()
        for day in (today - timedelta(days=1), today):
            if day.weekday() in self.days:
                opens, closes = self._span(day)
                if opens <= at.astimezone(UTC) < closes:
                    return True
        return False

    def next_opening(self, after: datetime) -> datetime | None:
        """`after` itself (in UTC) when the window is open then, else the next instant it opens; None: never."""
        moment = after.astimezone(UTC)
        if self.is_open(moment):
            return moment
        today = moment.astimezone(self.zone).date()
        for offset in range(_SEARCH_DAYS):
            day = today + timedelta(days=offset)
            if day.weekday() in self.days:
                opens, _ = self._span(day)
                if opens > moment:
                    return opens
        return None

    def next_closing(self, at: datetime) -> datetime | None:
        """When the window that is open at `at` closes; None when it is closed at `at`."""
        today = at.astimezone(self.zone).date()
        for day in (today - timedelta(days=1), today):
            if day.weekday() in self.days:
                opens, closes = self._span(day)
                if opens <= at.astimezone(UTC) < closes:
                    return closes
        return None
