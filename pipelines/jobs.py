"""Jobs: the sync of one day (or a range) through every stage, as the nightly schedule runs it."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

hoop_sync_job = define_asset_job(
    "hoop_sync",
    selection=AssetSelection.key_prefixes(["hoop"]),
    description="Read the day's sessions from hoop, rebuild its lake files, reload it into the "
    "warehouse, check it, then refresh the compliance findings.",
)
