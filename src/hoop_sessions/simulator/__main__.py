"""`python -m hoop_sessions.simulator`: the simulator in its own process (benchmarks)."""

from .cli import simulate

simulate(prog_name="python -m hoop_sessions.simulator")
