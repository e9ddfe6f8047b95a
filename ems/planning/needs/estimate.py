"""What each session still needs: energy, departure, power, phases — estimated, with sources.

Drivers often say nothing, and what they say may be wrong, so every figure falls back through a
fixed ladder and records which rung it came from:

- energy: the driver's declared need, else (target SOC − SOC on arrival) × battery capacity,
  else the median of this token's past sessions that took anything (`GOT_NOTHING_KWH`), else
  the site's (its past sessions' median once it has `SITE_HISTORY_MIN_SESSIONS`,
  `site_history`, else its configured default); minus what was delivered;
  and nothing more from the grid once the car has stopped drawing by itself (`stopped_full`: it
  drew nothing while our limit let it draw at least the minimum current — its battery is
  probably full, whatever was declared or estimated; PV surplus is still offered, so a car that
  only paused is not starved); and the other way, a car that still draws all it is allowed once
  its estimate is met needs more (`still_drawing`): another half hour at that rate is offered, again
  at every plan while it keeps drawing;
- departure: declared, else start + this token's typical stay, else start + the site's (learned
  median, else configured) stay; what is planned for is the departure we are sure of (declared
  − 1 h, or − the share of the declared stay by which the site's drivers were seen to leave
  early if more; estimated − 2 h, and for the site's no later than its 25th percentile of stays),
  fixed, while it is at least a step ahead; after it all the car may still need is due by
  halfway to the expected departure (the planner re-plans when a window ends); a car found full
  is planned up to the expected departure (PV only, no hurry); once the expected departure
  has passed while the car is still plugged in, `overdue`;
- max power: what the car drew while the limit in force was clearly above it (it limited
  itself), else the connector's limit; the power it is sure to get when its energy becomes
  urgent is `SURE_POWER_SHARE` of that, or of the most it was seen drawing, or of 16 A on one
  phase;
- vehicle phases: power / (phase voltage × per-phase current) from the charging periods,
  else the connector's phases;
- battery capacity: declared, else learned from this token's history (20 kWh delivered from a
  50% SOC on arrival, charging until it stopped by itself ⇒ about 40 kWh).

What is planned of the energy, since every rung but a stated target can be wrong either way:
the most the car plausibly needs (`upper_energy_kwh`) is split into a *need*, planned grid or
not, and *extra*, planned only from PV that no need takes (`optimizer` `energy_extra_kwh`). The
need is what could no longer be delivered after the departure we are sure of at the power the
car is sure to get; early in a stay it is often nothing, and it grows towards the most as that
departure nears. So a car that needed less than we feared fills up on PV and is found full,
and grid energy comes only when it is needed, late, instead of in the morning before the PV.
(Measured on the first June week of the office site with the log's declarations: the EV PV
share went from 65% to 94% of perfect foresight's, the energy delivered from 90% to 98% of the
true need; with truthful declarations every feasible session gets all of it.)

The estimation itself is pure (`estimate_need`); its inputs are gathered apart: what the store
holds by `ems.planning.needs.load_stored_inputs`, what the charging periods show by
`ems.planning.needs.evidence.period_samples`.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

SELF_LIMITED_RATIO = 0.9
"""A car drawing under 90% of the limit in force is limiting itself: that is its own maximum."""
MIN_CURRENT_FOR_PHASES_A = 2.0
OVERDUE_HORIZON = timedelta(hours=1)
"""How long a car still plugged in after its expected departure is expected to stay."""
MIN_WINDOW = timedelta(minutes=15)
IDLE_POWER_KW = 0.05
"""A period drawing less than this drew nothing."""
MIN_CHARGING_CURRENT_A = 6.0
"""IEC 61851's lowest charging current: under it a car may rightly refuse to draw."""
DECLARED_ENERGY_MARGIN = 0.25
"""A declared energy is a guess: the car may need this much more."""
HISTORY_UPPER_RATIO = 1.5
"""A driver's trips vary: a session may need this many times the token's median."""
DECLARED_DEPARTURE_MARGIN = timedelta(hours=1)
ESTIMATED_DEPARTURE_MARGIN = timedelta(hours=2)
"""How much earlier than declared, or than estimated, a car may leave."""
SURE_CURRENT_A = 16.0
SURE_POWER_SHARE = 0.45
"""The power a car is sure to get when its energy becomes urgent: this share of its learned
maximum, else of the larger of one phase at 16 A (the least an AC car draws) and the most it
was seen drawing; the rest is room for the cars around it and for the re-plan interval.
Lower, a car's need comes sooner: more of it is delivered before a car leaves early, and more
of it from the grid. Measured over twelve perturbed runs of `benchmarks replay_quality` each
(mean [range] of unmet kWh; EV PV share), 0.5 → 0.45:
- office month 11.6 [8.7, 16.6] → 9.1 [6.2, 13.5]; 0.4920 → 0.4911 (its target, 90 % of
  perfect foresight's, is 0.4913; the unperturbed replay 0.4966 → 0.4939)
- workplace week, harsh declarations 41.0 [36.9, 45.1] → 34.9 [30.5, 39.5]; 0.5349 → 0.5302
- workplace week, no declarations 10.8 [6.6, 17.6] → 7.8 [5.4, 15.9]; 0.4959 → 0.4896
- the public car park's month and congested week: unchanged (1900.1, 606.3)
At 0.4 (six runs): office 7.8 kWh at a share of 0.4886, under its target."""


@dataclass(frozen=True)
class SiteDefaults:
    """What a car without a declaration or a history of its own is taken to need and to stay:
    the site file's defaults, or what the site's own past sessions show (`learned_defaults`)."""

    energy_kwh: float = 15.0
    stay: timedelta = timedelta(hours=8)
    target_soc_pct: float = 100.0
    source: str = "site_default"
    """`site_default` (the file's, or the built-in ones) or `site_history` (learned)."""
    energy_upper_kwh: float | None = None
    """The most such a car plausibly needs (learned: the site's 90th percentile)."""
    sure_stay: timedelta | None = None
    """How long such a car surely stays (learned: the site's 25th percentile)."""
    declared_stay_error_share: float = 0.0
    """How much earlier than declared the site's drivers leave, as a share of the declared stay
    (learned: the 90th percentile); the margin on a declared departure is at least this share of
    the stay, and never under `DECLARED_DEPARTURE_MARGIN`."""


STILL_DRAWING_RAISE = timedelta(minutes=30)
"""A car still drawing at its full rate once its estimate is met may take this long more.
Measured (`benchmarks replay_quality`, judged on the latest period only, office month unmet
kWh / EV PV share of perfect foresight's): none 16.7 / 91.1 %, 15 min 14.6 / 90.4 %, 30 min
11.6 / 90.9 %, 1 h 9.0 / 89.0 %; the week without declarations 43.9, 32.1, 24.8, 23.0 kWh
unmet. Judged on the latest period the car was allowed to draw in (as now), 30 min: office
15.5 / 90.9 %, no declarations 9.8, harsh declarations 43.0 (41.2 without the raise)."""
ENERGY_MET_EPS_KWH = 0.1
GOT_NOTHING_KWH = 0.05
"""A past session that took less than this got nothing: it says how the planner did, not what
the car needed, so no energy is learned from it (its stay still counts). The same threshold as
`sessions_zero_energy`'s, `ems.replay.kpis.ZERO_ENERGY_KWH`, which the planning stage may not
import (and the KPIs, which `ems scsp-bench` uses, must not take from the planner)."""
SITE_HISTORY_MIN_SESSIONS = 10
"""Fewer past sessions than this say too little about a site: its configured defaults hold.
(At 20, a public car park's second morning was still planned for the configured 8 h stay, and
s00020 of the June month, 8 kWh in 54 min, got nothing; at 10 it is served. Measured with
`benchmarks replay_quality`: public month 1905.0 → 1900.1 kWh unmet, sessions with nothing 4 →
3; the congested week 606.8 → 606.3; the office month and workplace weeks within the spread of
their perturbed runs.)"""


def learned_defaults(defaults: SiteDefaults, past: Sequence[PastSession]) -> SiteDefaults:
    """`defaults` learned from the site's own past sessions, once there are enough of them.

    A public car park's cars stay two hours, not the eight of an office: with the configured
    stay a car was planned as if it had all afternoon and left with nothing (issue #16: 13 of
    413 public sessions of a June month). The median stay and energy are the expectation, the
    25th percentile of stays the departure we are sure of, the 90th percentile of energies the
    most a car may need. Energies are what cars took: a car that left before it was full took
    less than it needed, so the upper one is the one the planner offers. Past declared
    departures (`SITE_HISTORY_MIN_SESSIONS` or more) give how early drivers leave against what
    they say, as a share of the stay they declared (the 90th percentile): the margin on a
    declared departure.
    """
    early_shares = sorted(
        (p.declared_departure - p.end) / (p.declared_departure - p.start)
        for p in past
        if p.declared_departure is not None and p.declared_departure > p.start
    )
    error_share = defaults.declared_stay_error_share
    if len(early_shares) >= SITE_HISTORY_MIN_SESSIONS:
        error_share = max(0.0, statistics.quantiles(early_shares, n=10)[-1])
    if len(past) < SITE_HISTORY_MIN_SESSIONS:
        return replace(defaults, declared_stay_error_share=error_share)
    stays_s = sorted((p.end - p.start).total_seconds() for p in past)
    energies = sorted(p.energy_kwh for p in past)
    quartiles = statistics.quantiles(stays_s, n=4)
    deciles = statistics.quantiles(energies, n=10)
    return SiteDefaults(
        energy_kwh=statistics.median(energies),
        stay=timedelta(seconds=statistics.median(stays_s)),
        target_soc_pct=defaults.target_soc_pct,
        source="site_history",
        energy_upper_kwh=deciles[-1],
        sure_stay=timedelta(seconds=quartiles[0]),
        declared_stay_error_share=error_share,
    )


@dataclass(frozen=True)
class Preference:
    departure: datetime | None = None
    energy_need_kwh: float | None = None
    soc_arrival_pct: float | None = None
    battery_capacity_kwh: float | None = None
    target_soc_pct: float | None = None


@dataclass(frozen=True)
class PeriodSample:
    """One charging period as measured: mean power and per-phase current, and the limit then."""

    start: datetime
    end: datetime
    power_kw: float
    current_a: float | None
    limit_kw: float | None
    """The limit our profiles set over that period, in kW (`period_samples`: the mean of the
    lowest that may have held); None when no profile of ours held."""
    held_limit_kw: float | None = None
    """A limit that surely held over at least half the period (None: `limit_kw`)."""
    sent_limit_kw: float | None = None
    """The mean of our limits over the period had each profile held the moment we sent it
    (None: `limit_kw`)."""
    sent_peak_kw: float | None = None
    """The highest of those limits (None: `sent_limit_kw`)."""


@dataclass(frozen=True)
class PastSession:
    start: datetime
    end: datetime
    energy_kwh: float
    soc_arrival_pct: float | None = None
    stopped_full: bool = False
    declared_departure: datetime | None = None
    """What the driver had declared (`learned_defaults`: how early drivers leave against it)."""


@dataclass(frozen=True)
class NeedInputs:
    start: datetime
    delivered_kwh: float
    connector_max_power_kw: float
    connector_phases: int
    phase_voltage_v: float
    preference: Preference = field(default_factory=Preference)
    periods: Sequence[PeriodSample] = ()
    history: Sequence[PastSession] = ()
    defaults: SiteDefaults = field(default_factory=SiteDefaults)


@dataclass(frozen=True)
class Need:
    energy_needed_kwh: float
    energy_source: str
    departure: datetime
    departure_source: str
    max_power_kw: float | None
    max_power_source: str
    vehicle_phases: int
    phases_source: str
    battery_capacity_kwh: float | None
    capacity_source: str
    energy_extra_kwh: float = 0.0
    """What the car may take beyond `energy_needed_kwh`, from PV only (see `estimate_need`)."""
    energy_expected_kwh: float = 0.0
    """What the ladder's estimate says the car still needs: what people are shown. The plan
    gets `energy_needed_kwh` and `energy_extra_kwh` instead (the most it may need, split)."""
    expected_departure: datetime | None = None
    """The departure declared or estimated (or overdue): what people are shown. The plan gets
    `departure`: the one we are sure of while it is ahead, then halfway to this one."""


def learned_capacity_kwh(history: Sequence[PastSession]) -> float | None:
    """Capacity from sessions that charged until full: delivered / (1 − SOC on arrival)."""
    estimates = [
        past.energy_kwh / (1.0 - past.soc_arrival_pct / 100.0)
        for past in history
        if past.stopped_full and past.soc_arrival_pct is not None and past.soc_arrival_pct < 95
    ]
    return max(estimates) if estimates else None


def learned_max_power_kw(periods: Sequence[PeriodSample], connector_max_kw: float) -> float | None:
    """The car's own maximum, if it showed it: its highest draw, made while the limit was above.

    The first period is left out (a session rarely starts on a period boundary, so its mean is
    low), and a low self-limited draw never counts once the car has drawn more under any limit.
    Nor does a draw under the minimum charging current: no car's own maximum is that low, and a
    single-phase car on a three-phase connector under a small per-phase limit draws a third of
    what the limit is worth in kW while its phases cannot yet be told (under 2 A).
    """
    samples = [
        p
        for p in periods[1:]
        if p.power_kw > 0.1 and (p.current_a is None or p.current_a >= MIN_CHARGING_CURRENT_A)
    ]
    if not samples:
        return None
    self_limited = [
        p.power_kw
        for p in samples
        if p.power_kw < SELF_LIMITED_RATIO * (p.limit_kw if p.limit_kw is not None else connector_max_kw)
    ]
    if not self_limited or max(self_limited) < max(p.power_kw for p in samples) - 1e-6:
        return None
    return max(self_limited)


def max_drawn_kw(periods: Sequence[PeriodSample]) -> float:
    """The most the car was seen drawing over a whole period (0 if never): it can draw that."""
    return max((p.power_kw for p in periods[1:]), default=0.0)


def learned_phases(periods: Sequence[PeriodSample], phase_voltage_v: float) -> int | None:
    ratios = [
        p.power_kw * 1000.0 / (phase_voltage_v * p.current_a)
        for p in periods
        if p.current_a is not None and p.current_a >= MIN_CURRENT_FOR_PHASES_A and p.power_kw > 0.1
    ]
    if not ratios:
        return None
    return 1 if statistics.median(ratios) < 2.0 else 3


def allowed_kw(period: PeriodSample, connector_max_kw: float) -> float:
    """What the car was surely allowed to draw over `period`: the limit that surely held, else
    the limit our profiles set, else the connector's own. What a car is found full by."""
    limit = period.held_limit_kw if period.held_limit_kw is not None else period.limit_kw
    return limit if limit is not None else connector_max_kw


def mean_allowed_kw(period: PeriodSample, connector_max_kw: float) -> float:
    """What the car could draw over `period` on average: the mean of our limits over it as we
    sent them (a profile that changed inside the period let it draw no more, wherever the change
    fell), else the connector's own, never above it."""
    limit = period.sent_limit_kw if period.sent_limit_kw is not None else period.limit_kw
    return min(limit if limit is not None else connector_max_kw, connector_max_kw)


def stopped_by_itself(periods: Sequence[PeriodSample], connector_max_kw: float, min_power_kw: float) -> bool:
    """Whether the car has drawn nothing since a period in which it was allowed to draw.

    Only the trailing idle periods count: one of them must have had a limit (ours, or the
    connector's when no profile of ours held) of at least `min_power_kw`; a car kept at zero
    by our own plan shows nothing. The periods after it, planned at zero once it was found
    full, keep it found.
    """
    for period in reversed(periods):
        if period.power_kw >= IDLE_POWER_KW:
            return False
        if allowed_kw(period, connector_max_kw) >= min_power_kw and period.end > period.start:
            return True
    return False


def still_drawing_kw(periods: Sequence[PeriodSample], connector_max_kw: float) -> float:
    """The rate the car drew at in the latest period it was allowed to draw, if it drew all it
    was allowed (within `SELF_LIMITED_RATIO` of `mean_allowed_kw`): a car that is full, or
    nearly (tapering), draws less. Periods in which our limits held it at (nearly) nothing say
    nothing and are skipped. 0 when no period shows it. The rate is what it drew, scaled up by
    the highest of our limits over their mean: the rate while they let it draw.

    Against the mean, not the limit that held over most of the period (`allowed_kw`): a plan
    lands anywhere in a meter period, and a car that followed a profile raising it from 16.6 A
    to 31.9 A seven minutes into a quarter hour drew 78 % of 31.9 A, all it was allowed. Judged
    by the 31.9 A it looked tapering: with plans landing minutes into the meter periods, the
    live EMS left a car of the office's June day that declared nothing at 15.5 of its 19.28 kWh
    (the replay, planning on the meter periods' boundaries, delivered all of it). As sent, not
    the lowest that may hold while a profile settles (`limit_kw`): a car that a raise let draw
    at once and that drew less was finishing, not drawing all it may (measured on the replay's
    five logs of `benchmarks replay_quality`, the lowest left 0.6 kWh more undelivered). As
    sent, but a profile that starts before we sent it from its own start (`evidence`): a cut
    that a CPO applied as written, from the plan's instant, otherwise made a car held at its
    estimate look as if it tapered, and it was never raised."""
    for period in reversed(periods):
        allowed = mean_allowed_kw(period, connector_max_kw)
        if allowed < IDLE_POWER_KW:
            continue
        if period.power_kw < IDLE_POWER_KW or period.power_kw < SELF_LIMITED_RATIO * allowed:
            return 0.0
        peak = period.sent_peak_kw
        if peak is None or peak <= allowed:
            return period.power_kw
        # drawn while our limits let it: 0.7 kW over a quarter hour of which a profile let
        # it draw 7.4 kW for a minute and a half is 7 kW while it could (raised by a tenth of
        # that, the car never got back the half hour a plan on the boundary would have given)
        return min(period.power_kw * min(peak, connector_max_kw) / allowed, connector_max_kw)
    return 0.0


def upper_energy_kwh(inputs: NeedInputs, total: float, source: str, capacity: float | None) -> float:
    """The most this car plausibly needs in all, by the rung its estimate came from.

    Declared: the declaration plus `DECLARED_ENERGY_MARGIN` (drivers guess). State of charge:
    up to the target (a full battery unless a target was declared). Token history: the largest
    past session, and at least `HISTORY_UPPER_RATIO` × the median (a short history has seen few
    long trips). Site history: its 90th percentile. Site default: the default itself. Never more
    than a known battery holds, except what a driver declared.
    """
    if source == "declared":
        return total * (1.0 + DECLARED_ENERGY_MARGIN)
    upper = total
    if source == "token_history":
        upper = max(max(p.energy_kwh for p in inputs.history), HISTORY_UPPER_RATIO * total)
    elif source == "site_history" and inputs.defaults.energy_upper_kwh is not None:
        upper = max(total, inputs.defaults.energy_upper_kwh)
    return min(upper, capacity) if capacity is not None else upper


def estimate_need(inputs: NeedInputs, now: datetime, min_window: timedelta = MIN_WINDOW) -> Need:
    """What to plan for the session at `now`; `min_window` is the shortest plan window (the
    planner's step): a need due sooner is due now."""
    pref = inputs.preference
    capacity, capacity_source = pref.battery_capacity_kwh, "declared"
    if capacity is None:
        capacity, capacity_source = learned_capacity_kwh(inputs.history), "learned"
    if capacity is None:
        capacity_source = "unknown"

    total: float
    if pref.energy_need_kwh is not None:
        total, energy_source = pref.energy_need_kwh, "declared"
    elif pref.soc_arrival_pct is not None and capacity is not None:
        target = pref.target_soc_pct if pref.target_soc_pct is not None else inputs.defaults.target_soc_pct
        total, energy_source = max(0.0, (target - pref.soc_arrival_pct) / 100.0 * capacity), "soc"
    elif took := [p.energy_kwh for p in inputs.history if p.energy_kwh >= GOT_NOTHING_KWH]:
        # a token whose last sessions got nothing is not a car that needs nothing: it was
        # estimated at the median of those zeros, planned nothing, and got nothing again
        # (issue #16: s00142 of the public car-park month, 27.3 kWh wanted, none delivered)
        total, energy_source = statistics.median(took), "token_history"
    else:
        total, energy_source = inputs.defaults.energy_kwh, inputs.defaults.source
    upper_remaining = max(
        0.0, upper_energy_kwh(inputs, total, energy_source, capacity) - inputs.delivered_kwh
    )
    drawing_kw = still_drawing_kw(inputs.periods, inputs.connector_max_power_kw)
    if drawing_kw > 0.0 and inputs.delivered_kwh >= total - ENERGY_MET_EPS_KWH:
        # Its estimate is met and it still draws all it is allowed: it needs more than we
        # thought. Raise the estimate by another `STILL_DRAWING_RAISE` at that rate (the battery
        # stops the car when full; a cap here would stop it first), re-judged at every plan.
        raised = drawing_kw * STILL_DRAWING_RAISE.total_seconds() / 3600.0
        if capacity is not None:
            raised = min(raised, max(0.0, capacity - inputs.delivered_kwh))
        if raised > upper_remaining:
            upper_remaining, energy_source = raised, "still_drawing"

    sure_departure: datetime
    if pref.departure is not None:
        departure, departure_source = pref.departure, "declared"
        stay = max(timedelta(0), departure - inputs.start)
        margin = max(DECLARED_DEPARTURE_MARGIN, inputs.defaults.declared_stay_error_share * stay)
        sure_departure = departure - margin
    elif inputs.history:
        stay = timedelta(seconds=statistics.median((p.end - p.start).total_seconds() for p in inputs.history))
        departure, departure_source = inputs.start + stay, "token_history"
        sure_departure = departure - ESTIMATED_DEPARTURE_MARGIN
    else:
        departure, departure_source = inputs.start + inputs.defaults.stay, inputs.defaults.source
        sure_departure = departure - ESTIMATED_DEPARTURE_MARGIN
        if inputs.defaults.sure_stay is not None:
            sure_departure = min(sure_departure, inputs.start + inputs.defaults.sure_stay)
    if departure <= now:
        departure, departure_source = now + OVERDUE_HORIZON, "overdue"
        sure_departure = now
    expected_departure = departure
    if sure_departure >= now + min_window:
        # planned to be done by the departure we are sure of, which stays where it is: a window
        # that kept an hour ahead of each re-plan slid past it, and the need with it (the PV
        # drew it to the window's end), until the car left without it
        departure = sure_departure
    else:
        # past it: whatever the car may still need is due, by halfway to the departure
        # expected (at least a step ahead), and re-planned when that window ends
        # (`Planner.replan_due`): the nearer the departure, the sooner the rest comes.
        # (Due over the next step alone delivered a little more, 99.5% against 99.2% of the
        # June month's energy, with a lower EV PV share and 16% more plans.)
        sure_departure = now
        departure = max(now + (departure - now) / 2, now + min_window)

    max_power = learned_max_power_kw(inputs.periods, inputs.connector_max_power_kw)
    max_power_source = "learned" if max_power is not None else "connector"
    phases = learned_phases(inputs.periods, inputs.phase_voltage_v)
    if phases is not None and phases > inputs.connector_phases:
        phases = inputs.connector_phases
    phases_source = "learned" if phases is not None else "connector"
    phases_drawn = phases if phases is not None else inputs.connector_phases

    # What must be planned, grid or not: what of the most the car may need could not be
    # delivered after the departure we are sure of, at the power it is sure to get. The rest is
    # extra, from PV only: a car that needed less fills up on PV and is found full, and no grid
    # energy went into a need that was not there. (Planning even the least it surely needs
    # from its arrival was measured worse: that grid energy comes in the morning, before the
    # PV that would have covered it.)
    sure_kw = SURE_POWER_SHARE * (
        max_power
        if max_power is not None
        else max(
            min(inputs.connector_max_power_kw, SURE_CURRENT_A * inputs.phase_voltage_v / 1000.0),
            max_drawn_kw(inputs.periods),
        )
    )
    hours_left = max(0.0, (sure_departure - now).total_seconds() / 3600.0)
    needed = max(0.0, upper_remaining - sure_kw * hours_left)
    extra = upper_remaining - needed

    min_power_kw = MIN_CHARGING_CURRENT_A * inputs.phase_voltage_v * phases_drawn / 1000.0
    if stopped_by_itself(inputs.periods, inputs.connector_max_power_kw, min_power_kw):
        # Probably full; but a car that only paused must not be starved for the rest of its
        # stay (a limit of 0 would hide that it wants more): nothing from the grid, all of it
        # still offered from PV surplus.
        needed, extra, energy_source = 0.0, upper_remaining, "stopped_full"
        departure = expected_departure  # PV only, no hurry
    expected = 0.0 if energy_source == "stopped_full" else max(0.0, total - inputs.delivered_kwh)

    return Need(
        energy_needed_kwh=needed,
        energy_source=energy_source,
        departure=departure,
        departure_source=departure_source,
        max_power_kw=max_power,
        max_power_source=max_power_source,
        vehicle_phases=phases_drawn,
        phases_source=phases_source,
        battery_capacity_kwh=capacity,
        capacity_source=capacity_source,
        energy_extra_kwh=extra,
        energy_expected_kwh=expected,
        expected_departure=expected_departure,
    )
