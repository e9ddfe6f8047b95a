"""Run every benchmark (or the ones named) and print their figures."""

from __future__ import annotations

import importlib
import sys

BENCHMARKS = ("ocpi_ingest", "optimizer", "group", "planner_latency", "replay", "replay_quality", "scale")


def main(names: list[str]) -> None:
    for name in names or list(BENCHMARKS):
        if name not in BENCHMARKS:
            raise SystemExit(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}")
        module = importlib.import_module(f"benchmarks.{name}")
        module.main()
        print()


if __name__ == "__main__":
    main(sys.argv[1:])
