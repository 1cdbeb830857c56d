"""The code location: ``workspace.yaml`` and ``dagster ... -m pipelines.definitions`` load ``defs``.

Runs execute in one process: the steps form a chain (raw → lake → warehouse → checks → findings)
with nothing to run beside each other, and a process per step costs seconds of start-up each.
Days run side by side as separate runs; pools still hold each warehouse step to one at a time.

``HOOP_SYNC_START_DATE`` (with the sync ledger) and ``HOOP_BACKFILL_DAYS_PER_RUN`` are read
here, when the code location loads, and nowhere else in ``pipelines`` at import. Every
partitioned asset gets the same backfill policy, because Dagster puts two assets of a backfill in
one run only when their policies are equal (``dagster/_core/execution/asset_backfill.py``); a policy on some assets
only would split the backfill into separate runs per stage instead of per group of days.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from dagster import AssetsDefinition, BackfillPolicy, Definitions, in_process_executor

from pipelines.assets import build_assets
from pipelines.checks import hoop_checks
from pipelines.jobs import hoop_sync_job
from pipelines.partitions import backfill_policy, partitions_from_env
from pipelines.resources import resources_from_env
from pipelines.schedules import build_nightly
from pipelines.sensors import build_ledger_sensor


def with_backfill_policy(
    assets: Sequence[AssetsDefinition], policy: BackfillPolicy
) -> list[AssetsDefinition]:
    """``assets`` with ``policy`` on each partitioned one. Unpartitioned assets (findings, report)
    run once after the days whatever the policy, and Dagster allows them only single_run."""
    return [
        asset.with_attributes(backfill_policy=policy) if asset.partitions_def else asset
        for asset in assets
    ]


def build_defs(environ: Mapping[str, str]) -> Definitions:
    """The code location, from ``environ``: the partitions' first day (``HOOP_SYNC_START_DATE``
    or the sync ledger) and the backfill policy. Secrets are not read here; the resources read
    them when a run starts."""
    days = partitions_from_env(environ)
    return Definitions(
        assets=with_backfill_policy(build_assets(days), backfill_policy(environ)),
        asset_checks=hoop_checks,
        jobs=[hoop_sync_job],
        schedules=[build_nightly(days)],
        sensors=[build_ledger_sensor(days)],
        resources=resources_from_env(),
        executor=in_process_executor,
    )


# The one place the environment is read as the code location loads; every other module of
# pipelines imports without reading it.
defs = build_defs(os.environ)
