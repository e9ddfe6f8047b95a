"""Needs estimation: every rung of the ladder, on hand-made inputs."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ems.planning.needs import (
    PROFILE_EARLY_START,
    PROFILE_SETTLE,
    SITE_HISTORY_MIN_SESSIONS,
    SURE_POWER_SHARE,
    Need,
    NeedInputs,
    PastSession,
    PeriodSample,
    Preference,
    SentProfile,
    SiteDefaults,
    estimate_need,
    learned_capacity_kwh,
    learned_defaults,
    learned_max_power_kw,
    parse_meter_id_preferences,
    period_samples,
    read_until,
    still_drawing_kw,
    stopped_by_itself,
)
from ems.store.models import ChargingPeriod

START = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
NOW = START + timedelta(hours=1)


def inputs(**kwargs: object) -> NeedInputs:
    base: dict[str, object] = {
        "start": START,
        "delivered_kwh": 2.0,
        "connector_max_power_kw": 22.08,
        "connector_phases": 3,
        "phase_voltage_v": 230.0,
    }
    base.update(kwargs)
    return NeedInputs(**base)  # type: ignore[arg-type]


def planned(need: Need) -> float:
    """All the energy planned for the car: its need and the extra it may take from PV."""
    return need.energy_needed_kwh + need.energy_extra_kwh


def test_declared_need_and_departure_win() -> None:
    need = estimate_need(
        inputs(preference=Preference(departure=START + timedelta(hours=9), energy_need_kwh=20.0)), NOW
    )
    # up to the declaration and its margin, less what was delivered; shown: the declaration
    assert (planned(need), need.energy_source) == (pytest.approx(20.0 * 1.25 - 2.0), "declared")
    assert need.energy_expected_kwh == 18.0
    # planned for the departure we are sure of: an hour before the declared one, shown
    assert (need.departure, need.departure_source) == (START + timedelta(hours=8), "declared")
    assert need.expected_departure == START + timedelta(hours=9)


def test_the_need_grows_as_the_sure_departure_nears_and_the_rest_is_extra() -> None:
    """Declared departure 17:00: we are sure of 16:00. A car of unknown power is sure of 0.45 of
    16 A on one phase (1.66 kW): 23 kWh left at 9:00 fit in the 7 h after it (11.6 kWh) but for
    11.4 kWh, which must be planned, grid or not; the rest comes from PV only."""
    pref = Preference(departure=START + timedelta(hours=9), energy_need_kwh=20.0)
    sure_kw = SURE_POWER_SHARE * 16.0 * 230.0 / 1000.0
    need = estimate_need(inputs(preference=pref), NOW)
    assert need.energy_needed_kwh == pytest.approx(23.0 - sure_kw * 7.0)
    assert need.energy_extra_kwh == pytest.approx(sure_kw * 7.0)
    early = estimate_need(inputs(preference=Preference(energy_need_kwh=5.0), delivered_kwh=0.0), NOW)
    assert (early.energy_needed_kwh, early.energy_extra_kwh) == (0.0, pytest.approx(6.25))
    # at the sure departure all of it is a need, due halfway to the departure expected (and
    # re-planned when that comes); past the declared one, halfway through the overdue hour
    for later, until in (
        (START + timedelta(hours=8), START + timedelta(hours=8, minutes=30)),
        (START + timedelta(hours=10), START + timedelta(hours=10, minutes=30)),
        (START + timedelta(hours=8, minutes=50), START + timedelta(hours=9, minutes=5)),
    ):
        need = estimate_need(inputs(preference=pref), later)
        assert (need.energy_needed_kwh, need.energy_extra_kwh) == (pytest.approx(23.0), 0.0)
        assert need.departure == until
    # half an hour before it the window still ends at it: it does not slide with each re-plan
    soon = START + timedelta(hours=7, minutes=30)
    assert estimate_need(inputs(preference=pref), soon).departure == START + timedelta(hours=8)
    assert estimate_need(inputs(preference=pref), soon, timedelta(hours=1)).departure == soon + timedelta(
        hours=1
    )
    # a car that showed its own 7 kW is sure of 3.15 kW: 7 h at it (22.05 kWh) cover all 23 but
    # 0.95 kWh
    periods = [
        PeriodSample(START, START + timedelta(minutes=15), 7.0, 10.1, 22.0),
        PeriodSample(START + timedelta(minutes=15), START + timedelta(minutes=30), 7.0, 10.1, 22.0),
    ]
    need = estimate_need(inputs(preference=pref, periods=periods), NOW)
    assert (need.max_power_kw, need.energy_needed_kwh) == (7.0, pytest.approx(0.95))
    assert need.energy_extra_kwh == pytest.approx(22.05)
    # a car that drew 6 kW at our 6 kW limit did not show its own maximum, but it can draw
    # 6 kW: it is sure of 2.7 kW (7 h: 18.9 kWh of the 23)
    at_limit = [replace(p, power_kw=6.0, limit_kw=6.0) for p in periods]
    need = estimate_need(inputs(preference=pref, periods=at_limit), NOW)
    assert need.max_power_kw is None
    assert need.energy_needed_kwh == pytest.approx(23.0 - SURE_POWER_SHARE * 6.0 * 7.0)


def test_soc_and_capacity_give_the_energy() -> None:
    pref = Preference(soc_arrival_pct=40.0, battery_capacity_kwh=50.0, target_soc_pct=80.0)
    need = estimate_need(inputs(preference=pref), NOW)
    assert need.energy_source == "soc"
    assert planned(need) == pytest.approx(0.4 * 50.0 - 2.0)
    # no target: up to a full battery
    need = estimate_need(inputs(preference=replace(pref, target_soc_pct=None)), NOW)
    assert planned(need) == pytest.approx(0.6 * 50.0 - 2.0)


def test_capacity_is_learned_from_history() -> None:
    # 20 kWh delivered from 50% on arrival, charging until it stopped by itself: about 40 kWh.
    past = PastSession(
        START - timedelta(days=1), START - timedelta(days=1, hours=-9), 20.0, 50.0, stopped_full=True
    )
    assert learned_capacity_kwh([past]) == 40.0
    need = estimate_need(inputs(preference=Preference(soc_arrival_pct=75.0), history=[past]), NOW)
    assert (need.battery_capacity_kwh, need.capacity_source) == (40.0, "learned")
    assert (planned(need), need.energy_source) == (pytest.approx(0.25 * 40.0 - 2.0), "soc")


def test_token_history_then_site_default() -> None:
    history = [
        PastSession(START - timedelta(days=d), START - timedelta(days=d) + timedelta(hours=h), kwh)
        for d, h, kwh in ((1, 8, 10.0), (2, 9, 14.0), (3, 10, 30.0))
    ]
    need = estimate_need(inputs(history=history), NOW)
    # up to the largest past session (median 12, at least 1.5 x 12)
    assert (planned(need), need.energy_source) == (pytest.approx(30.0 - 2.0), "token_history")
    # the typical stay is 9 h: planned for 2 h earlier
    assert (need.departure, need.departure_source) == (START + timedelta(hours=7), "token_history")
    short = [replace(p, energy_kwh=12.0) for p in history]
    assert planned(estimate_need(inputs(history=short), NOW)) == pytest.approx(18.0 - 2.0)

    defaults = SiteDefaults(energy_kwh=7.0, stay=timedelta(hours=3))
    need = estimate_need(inputs(defaults=defaults), NOW)
    assert (planned(need), need.energy_source) == (pytest.approx(5.0), "site_default")
    assert (need.expected_departure, need.departure_source) == (START + timedelta(hours=3), "site_default")
    # and 2 h earlier is already past: all of it is due, by halfway to the 3 h
    assert need.departure == NOW + timedelta(hours=1) and need.energy_extra_kwh == 0.0


def test_past_sessions_that_got_nothing_say_nothing_of_the_energy_a_car_needs() -> None:
    """A token whose last sessions got nothing (the planner gave it nothing on a congested site)
    was estimated at the median of those zeros, planned nothing, and got nothing again: issue
    #16's s00142 of the public car-park month (27.3 kWh wanted, none delivered). Its zeros are
    left out; its stays still count."""
    starved = _site_past([3.0, 3.0, 3.0], [0.0, 0.0, 0.0])
    defaults = SiteDefaults(energy_kwh=7.0, stay=timedelta(hours=8))
    need = estimate_need(inputs(history=starved, defaults=defaults), NOW)
    assert (planned(need), need.energy_source) == (pytest.approx(7.0 - 2.0), "site_default")
    assert (need.expected_departure, need.departure_source) == (START + timedelta(hours=3), "token_history")
    # one session that took something is what the token's energy is learned from
    took = _site_past([3.0, 3.0, 3.0, 3.0], [0.0, 0.0, 0.0, 10.0])
    need = estimate_need(inputs(history=took, defaults=defaults), NOW)
    assert need.energy_source == "token_history" and need.energy_expected_kwh == pytest.approx(10.0 - 2.0)


def _site_past(stays_h: list[float], energies_kwh: list[float]) -> list[PastSession]:
    return [
        PastSession(START - timedelta(days=i + 1), START - timedelta(days=i + 1) + timedelta(hours=h), kwh)
        for i, (h, kwh) in enumerate(zip(stays_h, energies_kwh, strict=True))
    ]


def test_a_site_learns_its_stays_and_energies_from_its_own_past() -> None:
    """A public car park whose cars stay about two hours: a car with nothing declared and no
    history of its own is planned for the site's stay, not the configured eight hours, so it is
    charged at once instead of left to the afternoon it will not spend there."""
    configured = SiteDefaults()  # 15 kWh, 8 h
    stays = [1.0, 1.5, 1.5, 2.0, 2.0, 2.0, 2.5, 2.5, 3.0, 4.0] * 2
    energies = [4.0, 6.0, 6.0, 8.0, 8.0, 8.0, 10.0, 10.0, 12.0, 20.0] * 2
    learned = learned_defaults(configured, _site_past(stays, energies))
    assert learned.source == "site_history"
    assert learned.stay == timedelta(hours=2) and learned.energy_kwh == 8.0
    assert learned.sure_stay is not None and learned.sure_stay <= timedelta(hours=1.5)
    assert learned.energy_upper_kwh is not None and 12.0 <= learned.energy_upper_kwh <= 20.0

    arrived = inputs(delivered_kwh=0.0)
    need = estimate_need(replace(arrived, defaults=learned), START)
    assert (need.energy_source, need.departure_source) == ("site_history", "site_history")
    assert need.expected_departure == START + timedelta(hours=2)
    # sure of no more than the first quarter of stays: everything it may take is due now
    assert need.energy_extra_kwh == 0.0 and need.energy_needed_kwh == pytest.approx(learned.energy_upper_kwh)
    assert need.departure <= START + timedelta(hours=1)
    configured_need = estimate_need(replace(arrived, defaults=configured), START)
    # with the configured 8 h the car seems to have 6 h to go: most of it left to the PV
    assert configured_need.energy_extra_kwh > configured_need.energy_needed_kwh

    # too few sessions say too little: the configured defaults hold
    few = SITE_HISTORY_MIN_SESSIONS - 1
    assert learned_defaults(configured, _site_past(stays[:few], energies[:few])) == configured
    assert learned_defaults(configured, _site_past(stays[: few + 1], energies[: few + 1])) != configured


def test_a_site_whose_drivers_leave_early_widens_the_margin_on_declared_departures() -> None:
    """Drivers who declare 10 h and leave up to 2 h (20 % of the stay) early: the departure we
    are sure of for a car declaring 10 h is 2 h before it, not the built-in hour."""
    past = [
        PastSession(
            START - timedelta(days=i + 1),
            START - timedelta(days=i + 1) + timedelta(hours=10) - timedelta(minutes=6 * (i % 21)),
            8.0,
            declared_departure=START - timedelta(days=i + 1) + timedelta(hours=10),
        )
        for i in range(40)
    ]
    learned = learned_defaults(SiteDefaults(), past)
    assert 0.17 <= learned.declared_stay_error_share <= 0.2
    declared = Preference(departure=START + timedelta(hours=10), energy_need_kwh=10.0)
    need = estimate_need(inputs(preference=declared, defaults=learned), NOW)
    assert START + timedelta(hours=8) <= need.departure <= START + timedelta(hours=8, minutes=20)
    plain = estimate_need(inputs(preference=declared), NOW)
    assert plain.departure == START + timedelta(hours=9)  # the built-in hour
    # drivers who leave when they said: the built-in hour stays the least margin
    punctual = [replace(p, end=p.declared_departure) for p in past]
    assert learned_defaults(SiteDefaults(), punctual).declared_stay_error_share == 0.0
    on_time = estimate_need(
        inputs(preference=declared, defaults=learned_defaults(SiteDefaults(), punctual)), NOW
    )
    assert on_time.departure == START + timedelta(hours=9)


def _drawing(kw: float, limit_kw: float | None, hours: int = 4) -> list[PeriodSample]:
    return [
        PeriodSample(
            START + timedelta(hours=h), START + timedelta(hours=h + 1), kw, kw * 1000 / 690, limit_kw
        )
        for h in range(hours)
    ]


def test_a_car_that_keeps_drawing_gets_its_estimate_raised() -> None:
    """The overnight car of issue #16: nothing declared, 15 kWh by the site default, 16 kWh
    delivered and still drawing its 11 kW: it needs more, and gets another half hour of it."""
    now = START + timedelta(hours=4)
    need = estimate_need(inputs(delivered_kwh=16.0, periods=_drawing(11.0, 11.0)), now)
    assert need.energy_source == "still_drawing"
    assert planned(need) == pytest.approx(5.5)
    # ... within what a known battery can still hold
    pref = Preference(battery_capacity_kwh=19.0)
    capped = estimate_need(inputs(delivered_kwh=16.0, periods=_drawing(11.0, 11.0), preference=pref), now)
    assert planned(capped) == pytest.approx(3.0)
    # a car drawing well under what it is allowed is tapering, nearly full: not raised
    tapering = estimate_need(inputs(delivered_kwh=16.0, periods=_drawing(3.0, 11.0)), now)
    assert tapering.energy_source == "site_default" and planned(tapering) == 0.0
    # nor one whose estimate is not met yet
    early = estimate_need(inputs(delivered_kwh=5.0, periods=_drawing(11.0, 11.0)), now)
    assert early.energy_source == "site_default" and planned(early) == pytest.approx(10.0)


def test_overdue_departure_gets_a_short_horizon() -> None:
    late = NOW + timedelta(hours=5)
    need = estimate_need(inputs(preference=Preference(departure=START + timedelta(hours=1))), late)
    assert need.departure_source == "overdue" and need.departure > late


def test_max_power_and_phases_are_learned_from_periods() -> None:
    periods = [
        # The first period is partial (the car plugged in mid-period): left out.
        PeriodSample(START - timedelta(minutes=5), START, 1.0, 4.3, None),
        # Under a 22 kW limit the car drew 7.2 kW on one phase (31.3 A): it limits itself.
        PeriodSample(START, START + timedelta(minutes=15), 7.2, 31.3, 22.0),
        # Under our 5 kW limit it drew 5 kW: that teaches nothing about its maximum.
        PeriodSample(START + timedelta(minutes=15), START + timedelta(minutes=30), 5.0, 21.7, 5.0),
    ]
    need = estimate_need(inputs(periods=periods), NOW)
    assert (need.max_power_kw, need.max_power_source) == (7.2, "learned")
    assert (need.vehicle_phases, need.phases_source) == (1, "learned")
    # Having drawn 11 kW (all our limit allowed), a later 5 kW self-limited draw (a battery
    # tapering off) is no maximum.
    more_then_less = [
        PeriodSample(START, START + timedelta(minutes=15), 11.0, 15.9, None),
        PeriodSample(START + timedelta(minutes=15), START + timedelta(minutes=30), 11.0, 15.9, 11.0),
        PeriodSample(START + timedelta(minutes=30), START + timedelta(minutes=45), 5.0, 7.2, 22.0),
    ]
    assert estimate_need(inputs(periods=more_then_less), NOW).max_power_source == "connector"
    three_phase = [PeriodSample(START, START + timedelta(minutes=15), 11.0, 15.9, None)]
    assert estimate_need(inputs(periods=three_phase), NOW).vehicle_phases == 3
    assert estimate_need(inputs(), NOW).max_power_source == "connector"


def test_meter_id_preference_parse() -> None:
    parsed = parse_meter_id_preferences("departure=2026-06-01T17:30:00Z;energy_kwh=20;soc_pct=35;x=1")
    assert parsed == Preference(
        departure=datetime(2026, 6, 1, 17, 30, tzinfo=UTC), energy_need_kwh=20.0, soc_arrival_pct=35.0
    )
    assert parse_meter_id_preferences("METER-0042") is None
    assert parse_meter_id_preferences("departure=soon") is None


def test_a_sent_profile_limit_in_kw() -> None:
    profile = {
        "start_date_time": "2026-06-01T08:00:00Z",
        "charging_rate_unit": "A",
        "charging_profile_period": [{"start_period": 0, "limit": 16.0}, {"start_period": 900, "limit": 8.0}],
    }
    sent = SentProfile.of(START, profile)

    def kw(at: datetime, phases: int) -> float | None:
        limit = sent.limit(at.timestamp())
        return None if limit is None else limit * sent.kw_per_unit(230.0, phases)

    assert kw(START + timedelta(minutes=5), 3) == 16.0 * 230 * 3 / 1000
    assert kw(START + timedelta(minutes=20), 1) == 8.0 * 230 / 1000
    assert kw(START - timedelta(minutes=1), 3) is None
    assert sent.changes(START.timestamp(), (START + timedelta(hours=1)).timestamp()) == (
        (START + timedelta(minutes=15)).timestamp(),
    )
    watts = SentProfile.of(START, profile | {"charging_rate_unit": "W"})
    assert watts.kw_per_unit(230.0, 3) == 1 / 1000
    assert SentProfile.of(START, {"charging_profile_period": []}).limit(START.timestamp()) is None


def test_a_single_phase_car_under_a_per_phase_limit_is_not_taken_for_self_limited() -> None:
    """16 A per phase lets a 1-phase car draw 3.7 kW: that is the limit, not the car's maximum."""
    from ems.planning.needs import period_samples
    from ems.store.models import ChargingPeriod

    profile = {
        "start_date_time": "2026-06-01T07:00:00Z",
        "charging_rate_unit": "A",
        "charging_profile_period": [{"start_period": 0, "limit": 16.0}],
    }
    periods = [
        ChargingPeriod(
            start_date_time=START + timedelta(minutes=15 * i),
            dimensions=[{"type": "POWER", "volume": 3.68}, {"type": "CURRENT", "volume": 16.0}],
        )
        for i in range(4)
    ]
    samples = period_samples(
        periods, START + timedelta(hours=1), [SentProfile.of(START - timedelta(hours=1), profile)], 230.0, 3
    )
    assert all(s.limit_kw == 16.0 * 230 / 1000 for s in samples)
    need = estimate_need(inputs(periods=samples), NOW)
    assert (need.vehicle_phases, need.max_power_source) == (1, "connector")


def test_a_car_that_stopped_drawing_while_allowed_needs_nothing_more() -> None:
    """A car that draws nothing while our limit lets it is full, whatever was declared: nothing
    more from the grid, but PV surplus still offered (a car that only paused must not be starved);
    zero drawn under a zero limit of ours shows nothing, and the car stays full once found."""
    declared = Preference(energy_need_kwh=20.0)
    drew = PeriodSample(START, START + timedelta(minutes=30), 7.0, 10.0, 11.0)
    idle_allowed = PeriodSample(START + timedelta(minutes=30), NOW, 0.0, 0.0, 11.0)
    need = estimate_need(inputs(preference=declared, periods=[drew, idle_allowed]), NOW)
    assert (need.energy_needed_kwh, need.energy_source, need.energy_expected_kwh) == (
        0.0,
        "stopped_full",
        0.0,
    )
    assert need.energy_extra_kwh == pytest.approx(planned(need)) and need.energy_extra_kwh > 0
    # from PV only: no hurry, up to the departure expected
    assert need.departure == need.expected_departure == START + timedelta(hours=8)
    # planned at zero since: still full
    later = NOW + timedelta(hours=1)
    idle_planned = PeriodSample(NOW, later, 0.0, 0.0, 0.0)
    need = estimate_need(inputs(preference=declared, periods=[drew, idle_allowed, idle_planned]), later)
    assert need.energy_source == "stopped_full"
    # kept at zero by our plan, or under the minimum current: no evidence
    for limit_kw in (0.0, 1.0):
        held = PeriodSample(START + timedelta(minutes=30), NOW, 0.0, 0.0, limit_kw)
        need = estimate_need(inputs(preference=declared, periods=[drew, held]), NOW)
        assert (planned(need), need.energy_source) == (pytest.approx(23.0), "declared")


def test_a_draw_under_the_minimum_current_never_sets_the_car_maximum() -> None:
    """A single-phase car on a three-phase connector under a 0.8 A per-phase limit draws 0.18 kW
    of a limit worth 0.55 kW at three phases: not its own maximum."""
    low = [
        PeriodSample(
            START + timedelta(minutes=15 * i), START + timedelta(minutes=15 * (i + 1)), 0.184, 0.8, 0.55
        )
        for i in range(3)
    ]
    need = estimate_need(inputs(periods=low), NOW)
    assert (need.max_power_kw, need.max_power_source) == (None, "connector")


def amps(limit_a: float, start: datetime) -> dict[str, Any]:
    return {
        "start_date_time": start.isoformat().replace("+00:00", "Z"),
        "charging_rate_unit": "A",
        "charging_profile_period": [{"start_period": 0, "limit": limit_a}],
    }


def metered(start: datetime, minutes: float, power_kw: float) -> tuple[ChargingPeriod, datetime]:
    current_a = power_kw * 1000 / (3 * 230)
    return (
        ChargingPeriod(
            start_date_time=start,
            dimensions=[{"type": "POWER", "volume": power_kw}, {"type": "CURRENT", "volume": current_a}],
        ),
        start + timedelta(minutes=minutes),
    )


def three_phase_kw(limit_a: float) -> float:
    return limit_a * 3 * 230 / 1000


def test_a_raise_just_sent_may_not_hold_yet() -> None:
    """The closed loop's case: a car held at 7.2 A is raised to 32 A, and the charge point
    applies it a minute or so later. The one-minute meter periods meanwhile still show 7.2 A:
    that is the old limit, not the car's own maximum. Once the raise surely holds, they count."""
    raised_at = START + timedelta(minutes=10)
    profiles = [SentProfile.of(START, amps(7.2, START)), SentProfile.of(raised_at, amps(32.0, raised_at))]
    rows = [metered(START + timedelta(minutes=m), 1, three_phase_kw(7.2)) for m in range(1, 12)]
    periods = [period for period, _ in rows]
    end = rows[-1][1]
    samples = period_samples(periods, end, profiles, 230.0, 3)
    # before the raise, and within PROFILE_SETTLE of it: the old limit
    assert timedelta(minutes=2) == PROFILE_SETTLE
    assert all(s.limit_kw == pytest.approx(three_phase_kw(7.2)) for s in samples)
    assert learned_max_power_kw(samples, 22.08) is None
    # sent at once but never applied: past the settling time the car looks self-limited
    later = [
        *rows,
        *(metered(end + timedelta(minutes=m), 1, three_phase_kw(7.2)) for m in range(3)),
    ]
    samples = period_samples([p for p, _ in later], later[-1][1], profiles, 230.0, 3)
    assert samples[-1].limit_kw == pytest.approx(three_phase_kw(32.0))
    assert learned_max_power_kw(samples, 22.08) == pytest.approx(three_phase_kw(7.2))


def test_a_period_straddling_a_profile_is_judged_by_the_lowest_limit_that_may_hold() -> None:
    """A 15-minute period: a cut sent 5 minutes in may hold at once (16 A for 5 minutes, then
    6 A); a raise sent at its start may hold only 2 minutes later (6 A, then 16 A)."""
    cut_at = START + timedelta(minutes=5)
    period, end = metered(START, 15, 5.0)
    cut = period_samples(
        [period],
        end,
        [SentProfile.of(START, amps(16.0, START)), SentProfile.of(cut_at, amps(6.0, cut_at))],
        230.0,
        3,
    )
    assert cut[0].limit_kw == pytest.approx((5 * three_phase_kw(16.0) + 10 * three_phase_kw(6.0)) / 15)
    assert cut[0].held_limit_kw == pytest.approx(three_phase_kw(6.0))
    raise_profiles = [
        SentProfile.of(START - timedelta(hours=1), amps(6.0, START)),
        SentProfile.of(START, amps(16.0, START)),
    ]
    raised = period_samples([period], end, raise_profiles, 230.0, 3)
    assert raised[0].limit_kw == pytest.approx((2 * three_phase_kw(6.0) + 13 * three_phase_kw(16.0)) / 15)
    assert raised[0].held_limit_kw == pytest.approx(three_phase_kw(16.0))


def test_a_profile_sent_after_its_own_start_may_hold_from_that_start() -> None:
    """`ems scsp-bench`'s case: a plan at 8:24:39 cuts the car from 15.1 A to 0 A, and its
    profile goes out at 8:25:27; the CPO applies it as written, from 8:24:39. Over 8:15-8:30 the
    car drew all it was allowed, 15.1 A for 579 s: judged by the sending alone (11.2 A on
    average) it looked self-limited, and was planned at that power until it left short."""
    first = START + timedelta(minutes=9, seconds=50)
    cut_made, cut_sent = START + timedelta(minutes=24, seconds=39), START + timedelta(minutes=25, seconds=27)
    profiles = [SentProfile.of(first, amps(15.1, first)), SentProfile.of(cut_sent, amps(0.0, cut_made))]
    drawn_kw = three_phase_kw(15.1) * 579 / 900
    rows = [metered(START, 15, three_phase_kw(15.1)), metered(START + timedelta(minutes=15), 15, drawn_kw)]
    samples = period_samples([p for p, _ in rows], rows[-1][1], profiles, 230.0, 3)
    assert samples[-1].limit_kw == pytest.approx(drawn_kw)
    assert samples[-1].sent_limit_kw == pytest.approx(drawn_kw)  # as written
    assert learned_max_power_kw(samples, 22.08) is None
    # and once its estimate is met, it drew all it was let: it still draws
    assert still_drawing_kw(samples, 22.08) == pytest.approx(three_phase_kw(15.1))
    # sent on time, the same draw is the car's own: it stopped short of what it was allowed
    on_time = [SentProfile.of(first, amps(15.1, first)), SentProfile.of(cut_sent, amps(0.0, cut_sent))]
    samples = period_samples([p for p, _ in rows], rows[-1][1], on_time, 230.0, 3)
    assert samples[-1].limit_kw == pytest.approx(three_phase_kw(15.1) * 627 / 900)


def test_a_profile_retried_long_after_its_start_holds_from_when_it_was_sent() -> None:
    """A cut made at 8:00 that went out only at 8:12 (a retry): no CPO applies it from 8:00,
    only PROFILE_EARLY_START before it came; before then the 16 A it replaced held."""
    sent = START + timedelta(minutes=12)
    profiles = [
        SentProfile.of(START - timedelta(hours=1), amps(16.0, START)),
        SentProfile.of(sent, amps(0.0, START)),
    ]
    period, end = metered(START, 15, 1.0)
    sample = period_samples([period], end, profiles, 230.0, 3)[0]
    may_hold_from_min = 12 - PROFILE_EARLY_START.total_seconds() / 60
    assert sample.limit_kw == pytest.approx(three_phase_kw(16.0) * may_hold_from_min / 15)
    assert sample.sent_limit_kw == pytest.approx(three_phase_kw(16.0) * may_hold_from_min / 15)


def test_a_car_kept_at_zero_is_not_found_full_before_a_raise_holds() -> None:
    """Off (0 A) until a raise to 16 A: a one-minute period right after it drew nothing, which
    is no evidence; a quarter hour without a draw after it is."""
    profiles = [
        SentProfile.of(START - timedelta(hours=1), amps(0.0, START)),
        SentProfile.of(START, amps(16.0, START)),
    ]
    minute, minute_end = metered(START, 1, 0.0)
    samples = period_samples([minute], minute_end, profiles, 230.0, 3)
    assert not stopped_by_itself(samples, 22.08, 4.14)
    quarter, quarter_end = metered(START, 15, 0.0)
    samples = period_samples([quarter], quarter_end, profiles, 230.0, 3)
    assert stopped_by_itself(samples, 22.08, 4.14)


def test_a_profile_period_starting_inside_a_meter_period_counts_for_its_share() -> None:
    """The closed loop's case: a profile holds the car at 0 A until 18:03:02 and at 9.1 A
    after; the meter period 18:02:54-18:03:54 drew 7.9 A on average. Judged by the limit at
    its start (0 A, read as "no limit") the car looked self-limited at 5.5 kW."""
    sent_at = START - timedelta(minutes=15)
    profile = {
        "start_date_time": (START - timedelta(minutes=14, seconds=52)).isoformat().replace("+00:00", "Z"),
        "charging_rate_unit": "A",
        "charging_profile_period": [{"start_period": 0, "limit": 0.0}, {"start_period": 900, "limit": 9.1}],
    }
    drawn_a = {-1: 0.0, 0: 7.9, 1: 9.1, 2: 9.1}
    rows = [metered(START + timedelta(minutes=m), 1, three_phase_kw(a)) for m, a in drawn_a.items()]
    samples = period_samples([p for p, _ in rows], rows[-1][1], [SentProfile.of(sent_at, profile)], 230.0, 3)
    assert samples[0].limit_kw == 0.0
    assert samples[1].limit_kw == pytest.approx(three_phase_kw(9.1) * 52 / 60)
    assert samples[2].limit_kw == pytest.approx(three_phase_kw(9.1))
    assert learned_max_power_kw(samples, 22.08) is None
    # a car under a limit of 0 shows no maximum of its own, whatever it draws
    at_zero = [PeriodSample(START, START + timedelta(minutes=15), 3.0, 4.3, 0.0)] * 2
    assert learned_max_power_kw(at_zero, 22.08) is None


def test_a_car_that_drew_all_a_profile_changing_inside_the_period_let_it_is_still_drawing() -> None:
    """A plan lands anywhere in a meter period: 10 A for its first 7 minutes, 16 A after, and
    the car drew 13.2 A on average, all it was allowed. Its estimate met, it needs more, however
    the 16 A that held over most of the period compares, at the rate it drew while allowed. A
    raise that held at once and a car that drew 85 % of it is finishing: not raised (the 2 min
    a raise may take to settle would have lowered the mean it is judged by)."""
    two_limits = {
        "start_date_time": START.isoformat().replace("+00:00", "Z"),
        "charging_rate_unit": "A",
        "charging_profile_period": [{"start_period": 0, "limit": 10.0}, {"start_period": 420, "limit": 16.0}],
    }
    mean_a = (7 * 10.0 + 8 * 16.0) / 15
    period, end = metered(START, 15, three_phase_kw(mean_a))
    samples = period_samples(
        [period], end, [SentProfile.of(START - timedelta(hours=1), two_limits)], 230.0, 3
    )
    assert samples[0].held_limit_kw == pytest.approx(three_phase_kw(16.0))
    need = estimate_need(inputs(delivered_kwh=15.0, periods=samples), end)
    assert need.energy_source == "still_drawing"
    # another half hour at the 16 A it drew while allowed, not at the period's mean
    assert planned(need) == pytest.approx(three_phase_kw(16.0) * 0.5)
    # on and off: 16 A for 3 minutes of the quarter hour (what a plan at 8:12 allows), drawn
    on_off = {
        **two_limits,
        "charging_profile_period": [{"start_period": 0, "limit": 0.0}, {"start_period": 720, "limit": 16.0}],
    }
    period, end = metered(START, 15, three_phase_kw(16.0) * 3 / 15)
    samples = period_samples([period], end, [SentProfile.of(START - timedelta(hours=1), on_off)], 230.0, 3)
    need = estimate_need(inputs(delivered_kwh=15.0, periods=samples), end)
    assert need.energy_source == "still_drawing"
    assert planned(need) == pytest.approx(three_phase_kw(16.0) * 0.5)

    raise_profiles = [
        SentProfile.of(START - timedelta(hours=1), amps(6.0, START - timedelta(hours=1))),
        SentProfile.of(START, amps(16.0, START)),
    ]
    finishing, end = metered(START, 15, three_phase_kw(0.85 * 16.0))
    samples = period_samples([finishing], end, raise_profiles, 230.0, 3)
    assert samples[0].limit_kw is not None and samples[0].limit_kw < three_phase_kw(0.85 * 16.0) / 0.9
    need = estimate_need(inputs(delivered_kwh=15.0, periods=samples), end)
    assert need.energy_source == "site_default" and planned(need) == 0.0


def test_the_latest_period_is_judged_until_the_cpo_read_it_not_until_now() -> None:
    """Read at 8:15, the quarter hour from 8:00 drew nothing while our profile held the car at
    0 A. The profile lets it draw 16 A from 8:15 on: a plan at 8:30 that stretched the period
    to 8:30 found the car "full" (16 A over half of it, nothing drawn)."""
    profile = {
        "start_date_time": START.isoformat().replace("+00:00", "Z"),
        "charging_rate_unit": "A",
        "charging_profile_period": [{"start_period": 0, "limit": 0.0}, {"start_period": 900, "limit": 16.0}],
    }
    sent = [SentProfile.of(START - timedelta(minutes=30), profile)]
    period, read_at = metered(START, 15, 0.0)
    now = START + timedelta(minutes=30)
    assert read_until([period], read_at, now) == read_at
    samples = period_samples([period], read_until([period], read_at, now), sent, 230.0, 3)
    assert (samples[0].end, samples[0].limit_kw) == (read_at, 0.0)
    min_kw = three_phase_kw(6.0)
    assert not stopped_by_itself(samples, 22.08, min_kw)
    assert stopped_by_itself(period_samples([period], now, sent, 230.0, 3), 22.08, min_kw)
    # a CPO that sends a period as it begins (updated at its start, or before): read until now
    assert read_until([period], START, now) == now
    assert read_until([], read_at, now) == now
