"""A local hoop gateway: the sessions API with reproducible data, quirks, faults and truth.

    from hoop_sessions.simulator import SimulatorConfig, serve
    with serve(SimulatorConfig(days=2, sessions_per_day=50)) as gw:
        httpx.get(gw.url + "/api/sessions", headers={"Authorization": f"Bearer {gw.token}"})

See README.md in this package for the options, the data and the planted violations.
"""

from .catalog import CONNECTIONS, USERS, USERS_BY_EMAIL
from .config import ADMIN_IDENTITY, FAULT_KINDS, SimulatorConfig, TokenIdentity
from .dataset import Dataset
from .server import Gateway, Stats, serve
from .truth import export_truth
from .violations import PREDICATES

VIOLATIONS = tuple(PREDICATES)

__all__ = [
    "ADMIN_IDENTITY",
    "CONNECTIONS",
    "FAULT_KINDS",
    "USERS",
    "USERS_BY_EMAIL",
    "VIOLATIONS",
    "Dataset",
    "Gateway",
    "SimulatorConfig",
    "Stats",
    "TokenIdentity",
    "export_truth",
    "serve",
]
