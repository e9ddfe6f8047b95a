"""Three-phase power-flow cross-check of a plan with pandapower (`runpp_3ph`).

`electrical.check` is linear and exact for the model of formats §7 (mean powers, unity power
factor, nominal voltage); this module solves the same step as a real unbalanced network, to
catch a wrong coefficient, sign or phase mapping in that model.

The site becomes one low-voltage bus per protection plus a grid bus with the external grid.
Each protection is a very short, very low-impedance line from its parent's bus (or the grid
bus), so the current through the protection is the current of that line and voltage drops stay
near zero. Bus-bus switches would be the natural model but pandapower documents them as untested
in `runpp_3ph`. The external grid and lines carry the zero-sequence data `runpp_3ph` needs
(`s_sc_max_mva`, `rx_max`, `x0x_max`, `r0x0_max`; `r0_ohm_per_km`, `x0_ohm_per_km`,
`c0_nf_per_km`). Grid phases L1, L2, L3 are pandapower phases a, b, c; loads are wye.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from grid_models.site import PHASES, Connector, Phase, Site
from grid_models.validation import ensure_valid

_PP_PHASE: dict[Phase, str] = {"L1": "a", "L2": "b", "L3": "c"}
_LINE_LENGTH_KM = 0.001
_LINE_OHM_PER_KM = 0.01  # 10 µΩ per protection: drops of microvolts, currents untouched
_GRID_BUS = "grid"


@dataclass(frozen=True)
class PowerFlowResult:
    """Result of one step: per-phase current through each protection and bus voltages.

    `current_a[(protection, phase)]` is signed like `CheckReport.currents_a`: positive when the
    phase's active power flows away from the grid, negative when it flows back.
    """

    current_a: Mapping[tuple[str, Phase], float]
    neutral_current_a: Mapping[str, float]
    voltage_pu: Mapping[tuple[str, Phase], float]
    """Voltage of each protection's bus per phase, in p.u. of the site's phase voltage."""
    voltage_v: Mapping[tuple[str, Phase], float]
    grid_voltage_pu: Mapping[Phase, float]


def _pandapower() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pandapower

    return pandapower


def _phase_split_kw(connector: Connector, vehicle_phases: int, power_kw: float) -> dict[Phase, float]:
    """kW per grid phase of a session: a single-phase car on a three-phase AC connector draws on
    the connector's first phase only; DC connectors draw balanced on all their phases."""
    if vehicle_phases not in (1, 3):
        raise ValueError(f"vehicle_phases must be 1 or 3, got {vehicle_phases!r}")
    if connector.power_type == "AC" and vehicle_phases == 1:
        return {connector.phases[0]: power_kw}
    return {phase: power_kw / len(connector.phases) for phase in connector.phases}


def _create_many(net: Any, create: Any, table: str, elements: list[tuple[int, str]]) -> None:
    """Create wye elements at 0 kW, one per (bus, name). pandapower has no bulk creator for
    asymmetric elements and one call costs ~15 ms, so the first is created through the API (to
    get pandapower's columns and defaults) and the rest are copies of that row."""
    if not elements:
        return
    create(net, elements[0][0], name=elements[0][1], type="wye")
    first = net[table]
    rows = first.loc[first.index.repeat(len(elements))].reset_index(drop=True)
    rows["bus"] = [b for b, _ in elements]
    rows["name"] = [n for _, n in elements]
    net[table] = rows.astype(first.dtypes)


def to_pandapower(site: Site) -> Any:
    """A pandapower net of the site with every element at 0 kW.

    Loads are named after their element: one asymmetric load per connector and per building
    load, one asymmetric static generator per PV plant; lines and buses after their protection.
    An invalid site raises `SiteValidationError`.
    """
    ensure_valid(site)
    pp = _pandapower()
    vn_kv = site.phase_voltage_v * math.sqrt(3) / 1000.0
    net = pp.create_empty_network(name=site.id, sn_mva=1.0)
    grid_bus = pp.create_bus(net, vn_kv=vn_kv, name=_GRID_BUS)
    pp.create_ext_grid(
        net, grid_bus, vm_pu=1.0, s_sc_max_mva=1000.0, rx_max=0.1, x0x_max=1.0, r0x0_max=0.1, name="grid"
    )
    ids = [p.id for p in site.protections]
    bus = dict(zip(ids, (int(b) for b in pp.create_buses(net, len(ids), vn_kv=vn_kv, name=ids)), strict=True))
    if ids:
        pp.create_lines_from_parameters(
            net,
            from_buses=[grid_bus if p.parent is None else bus[p.parent] for p in site.protections],
            to_buses=[bus[p.id] for p in site.protections],
            length_km=_LINE_LENGTH_KM,
            r_ohm_per_km=_LINE_OHM_PER_KM,
            x_ohm_per_km=_LINE_OHM_PER_KM,
            c_nf_per_km=0.0,
            r0_ohm_per_km=_LINE_OHM_PER_KM,
            x0_ohm_per_km=_LINE_OHM_PER_KM,
            c0_nf_per_km=0.0,
            max_i_ka=[p.rated_current_a / 1000.0 for p in site.protections],
            name=ids,
        )
    loads = [(bus[cp.protection], c.id) for cp in site.charge_points for c in cp.connectors]
    loads += [(bus[ld.protection], ld.id) for ld in site.loads]
    _create_many(net, pp.create_asymmetric_load, "asymmetric_load", loads)
    _create_many(
        net,
        pp.create_asymmetric_sgen,
        "asymmetric_sgen",
        [(bus[pv.protection], pv.id) for pv in site.pv_plants],
    )
    return net


def powerflow_step(
    site: Site,
    connector_power_kw: Mapping[str, float],
    vehicle_phases: Mapping[str, int],
    pv_kw: float,
    base_load_kw: float,
) -> PowerFlowResult:
    """Solve one step of a plan with `runpp_3ph`; raises `RuntimeError` if it does not converge.

    Powers are placed on phases by formats §7 (written again here, not taken from
    `electrical`, so the cross-check also covers that bookkeeping): PV split by peak power,
    equally on three phases; base load on the first load, equally on its phases.
    """
    _pandapower()
    from pandapower.pf.runpp_3ph import runpp_3ph

    net = to_pandapower(site)
    load_index = {
        name: i for i, name in zip(net.asymmetric_load.index, net.asymmetric_load.name, strict=True)
    }
    connectors = {c.id: c for c in site.connectors()}
    for cid, power_kw in connector_power_kw.items():
        if cid not in connectors:
            raise ValueError(f"unknown connector {cid!r}")
        for phase, phase_kw in _phase_split_kw(connectors[cid], vehicle_phases.get(cid, 3), power_kw).items():
            net.asymmetric_load.at[load_index[cid], f"p_{_PP_PHASE[phase]}_mw"] = phase_kw / 1000
    if site.loads:
        first = site.loads[0]
        for phase in first.phases:
            column = f"p_{_PP_PHASE[phase]}_mw"
            net.asymmetric_load.at[load_index[first.id], column] = base_load_kw / len(first.phases) / 1000
    total_peak_kw = sum(pv.peak_power_kw for pv in site.pv_plants)
    for i, pv in zip(net.asymmetric_sgen.index, site.pv_plants, strict=True):
        for phase in PHASES:
            share = pv.peak_power_kw / total_peak_kw
            net.asymmetric_sgen.at[i, f"p_{_PP_PHASE[phase]}_mw"] = pv_kw * share / 3 / 1000

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba missing, pandas future warnings
        runpp_3ph(net, numba=False)
    if not net.converged:
        raise RuntimeError(f"three-phase power flow of site {site.id!r} did not converge")

    current: dict[tuple[str, Phase], float] = {}
    neutral: dict[str, float] = {}
    res = net.res_line_3ph
    for i, pid in zip(net.line.index, net.line.name, strict=True):
        for phase in PHASES:
            x = _PP_PHASE[phase]
            sign = -1.0 if res.at[i, f"p_{x}_from_mw"] < 0 else 1.0
            current[(pid, phase)] = sign * float(res.at[i, f"i_{x}_from_ka"]) * 1000.0
        neutral[pid] = float(res.at[i, "i_n_from_ka"]) * 1000.0
    vm = net.res_bus_3ph
    voltage_pu: dict[tuple[str, Phase], float] = {}
    grid_voltage_pu: dict[Phase, float] = {}
    for i, name in zip(net.bus.index, net.bus.name, strict=True):
        for phase in PHASES:
            value = float(vm.at[i, f"vm_{_PP_PHASE[phase]}_pu"])
            if i == net.ext_grid.bus.iloc[0]:
                grid_voltage_pu[phase] = value
            else:
                voltage_pu[(str(name), phase)] = value
    # pandapower's p.u. base is vn_kv/√3, which is exactly the site's phase voltage
    voltage_v = {k: v * site.phase_voltage_v for k, v in voltage_pu.items()}
    return PowerFlowResult(
        current_a=current,
        neutral_current_a=neutral,
        voltage_pu=voltage_pu,
        voltage_v=voltage_v,
        grid_voltage_pu=grid_voltage_pu,
    )
