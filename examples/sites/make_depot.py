"""Write `depot.json`: a bus/fleet depot with 104 connectors behind a three-level protection tree.

Purpose: a site big enough to exercise the planner and the per-phase checks, where the
breakers, not the grid connection alone, decide who charges. Main breaker → 4 feeders → 3
sub-boards each:

- board A: 6 x 22 kW three-phase (32 A) connectors with rotated wiring (L1-L2-L3, L2-L3-L1,
  L3-L1-L2), 192 A per phase at full power behind 125 A;
- board B: 4 dual charge points of 11 kW three-phase (16 A), 128 A at full power behind 80 A;
- board C: 12 x 7.4 kW single-phase (32 A) wallboxes, four on each of L1, L2, L3 (128 A per
  phase at full power behind 80 A).

A feeder would carry 448 A per phase at full power behind 250 A; the main breaker 1792 A behind
630 A. A 150 kWp PV plant and the workshop building sit under the main breaker. Everything is
computed, nothing is random, so running the script again gives the same file.

Usage: python examples/sites/make_depot.py [OUT.json]   (default: depot.json next to this file)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROTATIONS = (["L1", "L2", "L3"], ["L2", "L3", "L1"], ["L3", "L1", "L2"])


def make_depot(n_feeders: int = 4, site_id: str = "depot") -> dict[str, Any]:
    """The depot site file as a dict; `n_feeders` scales it (26 connectors per feeder)."""
    protections: list[dict[str, Any]] = [{"id": "main", "parent": None, "rated_current_a": 630}]
    charge_points: list[dict[str, Any]] = []
    evse = 0

    def connector(cp_id: str, n: int, phases: list[str], max_current_a: int) -> dict[str, Any]:
        nonlocal evse
        evse += 1
        return {
            "id": f"{cp_id}-{n}",
            "evse_uid": f"DE*DEP*E{evse:04d}",
            "connector_id": "1",
            "phases": phases,
            "max_current_a": max_current_a,
            "min_current_a": 6,
        }

    for f in range(1, n_feeders + 1):
        feeder = f"feeder{f}"
        protections.append({"id": feeder, "parent": "main", "rated_current_a": 250})
        board_a, board_b, board_c = f"{feeder}-a", f"{feeder}-b", f"{feeder}-c"
        protections += [
            {"id": board_a, "parent": feeder, "rated_current_a": 125},
            {"id": board_b, "parent": feeder, "rated_current_a": 80},
            {"id": board_c, "parent": feeder, "rated_current_a": 80},
        ]
        for i in range(6):
            cp_id = f"f{f}a{i + 1}"
            charge_points.append(
                {
                    "id": cp_id,
                    "protection": board_a,
                    "connectors": [connector(cp_id, 1, list(ROTATIONS[i % 3]), 32)],
                }
            )
        for i in range(4):
            cp_id = f"f{f}b{i + 1}"
            # the two sockets of a dual charge point are wired with different rotations
            connectors = [connector(cp_id, n, list(ROTATIONS[(i + n) % 3]), 16) for n in (1, 2)]
            charge_points.append({"id": cp_id, "protection": board_b, "connectors": connectors})
        for i in range(12):
            cp_id = f"f{f}c{i + 1}"
            phase = ("L1", "L2", "L3")[(i + f) % 3]
            charge_points.append(
                {"id": cp_id, "protection": board_c, "connectors": [connector(cp_id, 1, [phase], 32)]}
            )

    return {
        "id": site_id,
        "name": f"Fleet depot ({evse} connectors, 630 A main, 150 kWp PV)",
        "timezone": "Europe/Berlin",
        "latitude": 48.14,
        "longitude": 11.58,
        "phase_voltage_v": 230,
        "grid_connection": {"max_power_kw": 400.0},
        "protections": protections,
        "charge_points": charge_points,
        "pv_plants": [
            {
                "id": "pv-roof",
                "protection": "main",
                "peak_power_kw": 150.0,
                "tilt_deg": 10,
                "azimuth_deg": 180,
            }
        ],
        "loads": [{"id": "workshop", "protection": "main", "phases": ["L1", "L2", "L3"]}],
    }


def main(argv: list[str]) -> None:
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).with_name("depot.json")
    out.write_text(json.dumps(make_depot(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv)
