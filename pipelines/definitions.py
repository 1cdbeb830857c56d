"""The code location: ``workspace.yaml`` and ``dagster ... -m pipelines.definitions`` load ``defs``.

Runs execute in one process: the steps form a chain (raw → lake → warehouse → checks → findings)
with nothing to run beside each other, and a process per step costs seconds of start-up each.
Days run side by side as separate runs; pools still hold each warehouse step to one at a time.
"""

from __future__ import annotations

from dagster import Definitions, in_process_executor

from pipelines.assets import hoop_assets
from pipelines.checks import hoop_checks
from pipelines.jobs import hoop_sync_job
from pipelines.resources import resources_from_env
from pipelines.schedules import hoop_nightly
from pipelines.sensors import hoop_ledger

defs = Definitions(
    assets=hoop_assets,
    asset_checks=hoop_checks,
    jobs=[hoop_sync_job],
    schedules=[hoop_nightly],
    sensors=[hoop_ledger],
    resources=resources_from_env(),
    executor=in_process_executor,
)
