"""A simulated CPO for the EMS: an OCPI 2.2.1 CPO back-end, an OCPP 1.6J central system and
real OCPP 1.6J charge points replaying a session log in simulated time.

Run it: `python -m examples.cpo_simulator --help`. Use it from Python: `run_simulator(config)`
or `Simulator(config)` (see `simulator.py`).
"""

from .simulator import Simulator, SimulatorConfig, run_simulator
from .state import SimulatorState

__all__ = ["Simulator", "SimulatorConfig", "SimulatorState", "run_simulator"]
