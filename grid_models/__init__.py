"""The electrical model of a site: data, file format, validation, per-phase limits.

Pure: no database, no network, no clock. pandapower is imported only when
`grid_models.powerflow` runs a power flow.
"""

from grid_models.electrical import (
    CheckReport,
    Downstream,
    GridViolation,
    PhaseLimit,
    Violation,
    check,
    connector_phase_a_per_kw,
    constraints,
    downstream,
    session_max_power_kw,
)
from grid_models.site import (
    PHASES,
    ChargePoint,
    Connector,
    GridConnection,
    Load,
    OcpiLocationRef,
    Phase,
    Protection,
    PvPlant,
    Site,
)
from grid_models.sitefile import load_site, save_site, site_from_dict, site_json_schema, site_to_dict
from grid_models.validation import Problem, SiteValidationError, ensure_valid, validate

__all__ = [
    "PHASES",
    "ChargePoint",
    "CheckReport",
    "Connector",
    "Downstream",
    "GridConnection",
    "GridViolation",
    "Load",
    "OcpiLocationRef",
    "Phase",
    "PhaseLimit",
    "Problem",
    "Protection",
    "PvPlant",
    "Site",
    "SiteValidationError",
    "Violation",
    "check",
    "connector_phase_a_per_kw",
    "constraints",
    "downstream",
    "ensure_valid",
    "load_site",
    "save_site",
    "session_max_power_kw",
    "site_from_dict",
    "site_json_schema",
    "site_to_dict",
    "validate",
]
