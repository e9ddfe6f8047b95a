"""What a session's charging periods show, judged against the profiles we sent it.

`period_samples` turns the stored periods into the `PeriodSample`s the estimate learns from,
each with the limit our accepted profiles (`SentProfile`) may then have set. It is apart from
the estimate (`ems.planning.needs.estimate`), which sees only the samples: this is where OCPI
dimensions and profiles are read, and where it is judged when a profile we sent held.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from ems.planning.needs.estimate import PeriodSample, learned_phases

PROFILE_SETTLE = timedelta(minutes=2)
"""How long after we send a profile the limit before it may still hold: the CPO passes it on
over OCPP and the charge point applies it, seconds to a minute or more later."""

PROFILE_EARLY_START = timedelta(minutes=5)
"""How long before we sent it a profile may hold from its own start: one that waited in our
outbox (a burst at the CPO's rate, a plan on a loaded machine: up to 3 simulated minutes on
`ems scsp-bench` at 600x) may be applied as written. Longer waits are retries, applied when they
come."""


class StoredPeriod(Protocol):
    """A charging period as stored: a `ChargingPeriod`, or a row of its columns."""

    @property
    def start_date_time(self) -> datetime: ...

    @property
    def dimensions(self) -> list[Any]: ...


def _dimension(dimensions: Sequence[dict[str, Any]], kind: str) -> float | None:
    for dimension in dimensions:
        if dimension.get("type") == kind:
            return float(dimension["volume"])
    return None


@dataclass(frozen=True)
class SentProfile:
    """A profile we sent and the CPO accepted, read once: when we sent it, and its limits from
    when, in its own unit (times in POSIX seconds)."""

    sent_at: datetime
    at_s: tuple[float, ...]
    """When each of its periods begins (none: a profile without a start sets no limit)."""
    limits: tuple[float, ...]
    in_watts: bool

    @classmethod
    def of(cls, sent_at: datetime, profile: dict[str, Any]) -> SentProfile:
        """An OCPI ChargingProfile, its periods in ascending `start_period` as OCPI has them."""
        from ems.ocpi.datetimes import parse_ocpi_datetime

        raw_start = profile.get("start_date_time")
        in_watts = profile.get("charging_rate_unit") == "W"
        if not raw_start:
            return cls(sent_at, (), (), in_watts)
        start_s = parse_ocpi_datetime(raw_start).timestamp()
        periods = profile.get("charging_profile_period") or []
        return cls(
            sent_at,
            tuple([start_s + period["start_period"] for period in periods]),
            tuple([float(period["limit"]) for period in periods]),
            in_watts,
        )

    def kw_per_unit(self, voltage_v: float, phases: int) -> float:
        """kW per unit of its limits (per phase drawn, in A)."""
        return 1.0 / 1000.0 if self.in_watts else voltage_v * phases / 1000.0

    def limit(self, at_s: float) -> float | None:
        """Its limit at `at_s` in its unit (None before it starts)."""
        i = bisect.bisect_right(self.at_s, at_s) - 1
        return None if i < 0 else self.limits[i]

    def changes(self, start_s: float, end_s: float) -> Sequence[float]:
        """When its limit changes strictly between `start_s` and `end_s`."""
        return self.at_s[bisect.bisect_right(self.at_s, start_s) : bisect.bisect_left(self.at_s, end_s)]


def read_until(periods: Sequence[StoredPeriod], last_updated: datetime, now: datetime) -> datetime:
    """Until when the latest charging period was read: the session's last update, when the CPO
    sent its periods and energy as of then, if that is after the period began; else `now`.

    Read to `now`, the period a CPO read at 11:30 was judged against our limits of 11:30 to a
    plan minutes later, which it never saw: a car our profile held at 0 until 11:30 and let
    draw from then on looked full by a plan at 11:37 (the office's June day on `ems
    scsp-bench`: cars found full with 4.5 of their 9 kWh, and 0.3 of 19.3). The replay plans
    right after each meter update, where the two are one."""
    if periods and periods[-1].start_date_time < last_updated <= now:
        return last_updated
    return now


def period_samples(
    periods: Sequence[StoredPeriod],
    session_end: datetime,
    profiles: Sequence[SentProfile],
    voltage_v: float,
    connector_phases: int,
) -> list[PeriodSample]:
    """Charging periods as power samples, each with the limit our profiles then set; the latest
    ends at `session_end` (`read_until`, for a session still charging).

    A profile in A is per phase drawn, so its power depends on the car: the phases it was seen
    drawing on are learned first (a single-phase car on a three-phase connector would otherwise
    look self-limited at a third of its limit, and be starved by the maximum learned from it).

    A meter period rarely lines up with a profile: the limit is the mean over the period
    (`_LimitsSent.limits_kw`). Nor does a profile hold the moment we send it: the CPO passes it
    on over OCPP and the charge point applies it, so for `PROFILE_SETTLE` the limit before it
    may still hold, and the lowest of them is taken. So a car still held at the old limit after
    a raise, or at 0 until a profile's next period, is not taken for one that limits itself;
    and a car is taken for full only by a limit that surely held over half the period or more.
    A profile that starts before we sent it (made by a plan at 10:24:39, sent at 10:25:27) may
    also hold from its own start: a CPO may apply it as written. Judged from the sending only,
    a car that a profile cut from 15.1 A to 0 from 10:24:39 drew 9.7 A over the quarter hour,
    under the 11.2 A mean we thought held: it looked self-limited at 2.2 kW, was planned at that
    from then on, drew it, and left with 13.2 of its 19.3 kWh (`ems scsp-bench`, the office's
    June day, on a loaded machine).
    """
    raw: list[tuple[datetime, datetime, float, float | None]] = []
    for i, period in enumerate(periods):
        end = periods[i + 1].start_date_time if i + 1 < len(periods) else session_end
        hours = max((end - period.start_date_time).total_seconds() / 3600.0, 1e-9)
        power = _dimension(period.dimensions, "POWER")
        if power is None:
            energy = _dimension(period.dimensions, "ENERGY")
            power = energy / hours if energy is not None and end > period.start_date_time else 0.0
        raw.append((period.start_date_time, end, power, _dimension(period.dimensions, "CURRENT")))
    unlimited = [PeriodSample(start, end, power, current, None) for start, end, power, current in raw]
    phases = min(learned_phases(unlimited, voltage_v) or connector_phases, connector_phases)
    sent = _LimitsSent(sorted(profiles, key=lambda p: p.sent_at), voltage_v, phases)  # stable
    samples = []
    for start, end, power, current in raw:
        limits = sent.limits_kw(start.timestamp(), end.timestamp())
        samples.append(PeriodSample(start, end, power, current, *limits))
    return samples


class _LimitsSent:
    """The limits the profiles we sent a session (in the order we sent them) may have set."""

    def __init__(self, profiles: Sequence[SentProfile], voltage_v: float, phases: int) -> None:
        self.profiles = profiles
        self.sent_s = [p.sent_at.timestamp() for p in profiles]
        early_s = PROFILE_EARLY_START.total_seconds()
        self.from_s = [
            max(min(s, p.at_s[0]), s - early_s) if p.at_s else s
            for s, p in zip(self.sent_s, profiles, strict=True)
        ]
        self.kw_per_unit = [p.kw_per_unit(voltage_v, phases) for p in profiles]
        self.settle_s = PROFILE_SETTLE.total_seconds()

    def _held_from(self, at_s: float, sent_before_s: float) -> list[int]:
        """The profiles that may hold at `at_s`, of those sent before `sent_before_s`: the
        latest sent by then, each one before it while the one after it may not hold yet, and
        any sent later whose own start is by then (`from_s`)."""
        latest = bisect.bisect_right(self.sent_s, at_s) - 1
        first = latest
        while first >= 0 and self.sent_s[first] + self.settle_s > at_s:
            first -= 1
        return [*range(max(first, 0), latest + 1), *self._sent_later_holding(at_s, latest, sent_before_s)]

    def _sent_later_holding(self, at_s: float, latest: int, sent_before_s: float) -> Iterator[int]:
        """The profiles sent after `at_s` (after the one at `latest`) but before `sent_before_s`
        that may hold at `at_s` from their own start (`from_s`), in the order sent."""
        for later in range(latest + 1, len(self.sent_s)):
            if self.sent_s[later] >= sent_before_s:
                return
            if self.from_s[later] <= at_s:
                yield later

    def lowest_kw(self, at_s: float, sent_before_s: float | None = None) -> float | None:
        """The lowest limit that may hold at `at_s`, of the profiles sent before `sent_before_s`
        (by default `at_s`; None: no profile of ours held)."""
        limits = [
            limit * self.kw_per_unit[i]
            for i in self._held_from(at_s, at_s if sent_before_s is None else sent_before_s)
            if (limit := self.profiles[i].limit(at_s)) is not None
        ]
        return min(limits) if limits else None

    def latest_kw(self, at_s: float, sent_before_s: float | None = None) -> float | None:
        """The limit of the latest profile sent by `at_s`, as if it held the moment we sent it,
        or from its own start if that came first and it was sent before `sent_before_s` (None:
        none sent yet, or it sets none then)."""
        latest = bisect.bisect_right(self.sent_s, at_s) - 1
        if sent_before_s is not None:
            latest = max(self._sent_later_holding(at_s, latest, sent_before_s), default=latest)
        if latest < 0:
            return None
        limit = self.profiles[latest].limit(at_s)
        return None if limit is None else limit * self.kw_per_unit[latest]

    def limits_kw(
        self, start_s: float, end_s: float
    ) -> tuple[float | None, float | None, float | None, float | None]:
        """Of the lowest limit that may hold over [start_s, end_s) (`lowest_kw`): its mean,
        and the highest one held over at least half the period; of the limits as sent
        (`latest_kw`): their mean and the highest. Pieces where no profile of ours held are
        left out (the car's own limit is higher); None if none did."""
        sent_s = self.sent_s
        latest = bisect.bisect_right(sent_s, start_s) - 1
        if end_s <= start_s:
            lowest, as_sent = self.lowest_kw(start_s), self.latest_kw(start_s)
            return lowest, lowest, as_sent, as_sent
        if latest + 1 == len(sent_s) or sent_s[latest + 1] >= end_s:  # nothing sent meanwhile
            if latest < 0:
                return None, None, None, None
            one = self.profiles[latest]
            if sent_s[latest] + self.settle_s <= start_s:
                after = bisect.bisect_right(one.at_s, start_s)
                if after == len(one.at_s) or one.at_s[after] >= end_s:  # one limit throughout
                    limit = one.limits[after - 1] * self.kw_per_unit[latest] if after > 0 else None
                    return limit, limit, limit, limit
        held = self._held_from(start_s, end_s)
        cuts = {start_s}
        for i in range(min(held, default=0), len(sent_s)):
            if sent_s[i] >= end_s:
                break
            cuts.update(
                at for at in (self.from_s[i], sent_s[i], sent_s[i] + self.settle_s) if start_s < at < end_s
            )
            cuts.update(self.profiles[i].changes(start_s, end_s))
        bounds = [*sorted(cuts), end_s]
        period_s = end_s - start_s
        weighted = limited_s = 0.0
        longest: float | None = None
        sent_weighted = sent_s_total = 0.0
        sent_peak: float | None = None
        for a, b in itertools.pairwise(bounds):
            as_sent = self.latest_kw(a, end_s)
            if as_sent is not None:
                sent_weighted += as_sent * (b - a)
                sent_s_total += b - a
                sent_peak = as_sent if sent_peak is None else max(sent_peak, as_sent)
            limit = self.lowest_kw(a, end_s)
            if limit is None:
                continue
            weighted += limit * (b - a)
            limited_s += b - a
            if 2.0 * (b - a) >= period_s and (longest is None or limit > longest):
                longest = limit
        mean = weighted / limited_s if limited_s > 0.0 else None
        mean_as_sent = sent_weighted / sent_s_total if sent_s_total > 0.0 else None
        return mean, longest if longest is not None else mean, mean_as_sent, sent_peak
