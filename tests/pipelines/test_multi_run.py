"""Dagster beyond one run: backfills cut into runs of N days, and runs of different days at once.

The runs here execute in-process against the simulator on loopback, into one data directory, on a
SQLite instance whose ``hoop_warehouse`` pool has one slot: Dagster enforces that pool across runs
(``granularity: op``), as it does on a cluster whose runs are pods.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    BackfillPolicy,
    DagsterEventType,
    DagsterInstance,
    ExecuteInProcessResult,
    materialize,
)
from dagster._core.instance.ref import InstanceRef

from hoop_sessions.build import schema
from hoop_sessions.cli.devserver import prepare_dagster_home
from hoop_sessions.errors import ConfigError
from hoop_sessions.warehouse import manifest
from pipelines.assets import WAREHOUSE_POOL
from pipelines.checks import hoop_checks
from pipelines.definitions import defs
from pipelines.partitions import backfill_policy
from pipelines.resources import resources_from_env
from tests.pipelines.conftest import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    Hoop,
    days_ago,
    hoop_assets,
    hoop_days,
)

REPO = Path(__file__).resolve().parents[2]
# What a run of the code location does with its pool's answer: keep the run short if it hangs.
RUN_SECONDS = 240


@pytest.fixture
def dagster_home(tmp_path: Path) -> Path:
    """A Dagster home with the instance configuration ``make dev`` writes (every pool: 1 step)."""
    return prepare_dagster_home(tmp_path / "dagster_home")


@pytest.fixture
def instance(dagster_home: Path) -> Iterator[DagsterInstance]:
    with DagsterInstance.from_ref(InstanceRef.from_dir(str(dagster_home))) as persistent:
        # What the first step of the pool does in a run: the pool takes the instance's default.
        persistent.event_log_storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)
        assert persistent.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).slot_count == 1
        yield persistent


def run_days(instance: DagsterInstance, first: date, last: date) -> ExecuteInProcessResult:
    """One run over [first, last], as a backfill cut into runs launches each of them."""
    return materialize(
        [*hoop_assets, *hoop_checks],
        tags={RANGE_START_TAG: first.isoformat(), RANGE_END_TAG: last.isoformat()},
        resources=resources_from_env(),
        instance=instance,
        raise_on_error=False,
    )


class RunInThread:
    """A run on a thread of this process, its result kept for the test's thread. (One at a time:
    two in-process runs in one process deadlock on the logging module's locks.)"""

    def __init__(self, instance: DagsterInstance, first: date, last: date) -> None:
        self.result: ExecuteInProcessResult | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(instance, first, last))
        self.thread.start()

    def _run(self, instance: DagsterInstance, first: date, last: date) -> None:
        try:
            self.result = run_days(instance, first, last)
        except BaseException as exc:
            self.error = exc

    def join(self) -> ExecuteInProcessResult:
        self.thread.join(RUN_SECONDS)
        assert not self.thread.is_alive(), "the run did not finish"
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


# A run in a process of its own, on the instance of DAGSTER_HOME, as a run worker runs it.
RUN_IN_PROCESS = """
import os
import sys
from dagster import DagsterInstance, materialize
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from pipelines.assets import build_assets
from pipelines.partitions import partitions_from_env
from pipelines.resources import resources_from_env

hoop_assets = build_assets(partitions_from_env(os.environ))
first, last = sys.argv[1:3]
# The days' assets, as each run of a backfill cut into runs holds them (the findings and the
# report, unpartitioned, come once after the last day, in a run of their own).
with DagsterInstance.get() as instance:
    result = materialize(
        [asset for asset in hoop_assets if asset.partitions_def],
        tags={ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last},
        resources=resources_from_env(),
        instance=instance,
        raise_on_error=False,
    )
sys.exit(0 if result.success else 1)
"""


def start_run_process(dagster_home: Path, first: date, last: date) -> subprocess.Popen[str]:
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    return subprocess.Popen(
        [sys.executable, "-c", RUN_IN_PROCESS, first.isoformat(), last.isoformat()],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _policies_when_loaded_with(days_per_run: str) -> dict[str, str]:
    """Each asset's backfill policy as ``pipelines.definitions`` builds it in a fresh process."""
    code = (
        "import json\n"
        "from pipelines.definitions import defs\n"
        "graph = defs.resolve_asset_graph()\n"
        "print(json.dumps({k.to_user_string(): str(graph.get(k).backfill_policy)\n"
        "                  for k in graph.get_all_asset_keys()}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOOP_", "DAGSTER_HOME"))}
    env["HOOP_BACKFILL_DAYS_PER_RUN"] = days_per_run
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    policies: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return policies


def test_every_partitioned_asset_backfills_in_runs_of_the_days_per_run_the_variable_sets() -> None:
    policies = _policies_when_loaded_with("3")
    graph = defs.resolve_asset_graph()
    partitioned = {
        k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).partitions_def
    }
    assert partitioned and set(policies) == {k.to_user_string() for k in graph.get_all_asset_keys()}
    for key, policy in policies.items():
        # One policy for the whole chain, or Dagster would run each stage in runs of its own.
        expected = (
            BackfillPolicy.multi_run(3) if key in partitioned else BackfillPolicy.single_run()
        )
        assert policy == str(expected), key


# What Dagster's daemon does with a backfill of the code location's partitioned assets: one
# iteration of its backfill loop, whose runs an instance with a queued run coordinator only queues.
BACKFILL_ITERATION = """
import json, logging, sys, time
from dagster import DagsterInstance
from dagster._core.execution.backfill import PartitionBackfill
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import InProcessTestWorkspaceLoadTarget
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._daemon.backfill import execute_backfill_iteration

origin = LoadableTargetOrigin(module_name="pipelines.definitions", working_directory=".")
with DagsterInstance.get() as instance, WorkspaceProcessContext(
    instance, InProcessTestWorkspaceLoadTarget(InProcessCodeLocationOrigin(origin))
) as workspace:
    graph = workspace.create_request_context().asset_graph
    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id="backfill", asset_graph=graph, partition_names=sys.argv[1:],
        asset_selection=[k for k in graph.get_all_asset_keys() if graph.get(k).is_partitioned],
        backfill_timestamp=time.time(), tags={}, dynamic_partitions_store=instance,
        all_partitions=False, title=None, description=None, run_config=None,
    )
    instance.add_backfill(backfill)
    list(execute_backfill_iteration(workspace, logging.getLogger("backfill")))
    print(json.dumps([
        [r.tags.get("dagster/asset_partition_range_start"),
         r.tags.get("dagster/asset_partition_range_end"),
         sorted(k.to_user_string() for k in r.asset_selection or ())]
        for r in instance.get_runs()
    ]))
"""
QUEUE_ONLY = """\
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
telemetry:
  enabled: false
"""


def test_a_backfill_is_launched_as_runs_of_n_days_each_holding_the_whole_chain_of_its_days(
    tmp_path: Path,
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(QUEUE_ONLY)
    graph = defs.resolve_asset_graph()
    partitioned = sorted(
        k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).partitions_def
    )
    days = hoop_days.get_partition_keys()[-7:]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOOP_", "DAGSTER_HOME"))}
    env |= {"HOOP_BACKFILL_DAYS_PER_RUN": "3", "DAGSTER_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-c", BACKFILL_ITERATION, *days],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = sorted(json.loads(done.stdout.strip().splitlines()[-1]))
    # Days 1-3, 4-6 and 7, each run reading, building and loading its own days.
    assert runs == [
        [days[0], days[2], partitioned],
        [days[3], days[5], partitioned],
        [days[6], days[6], partitioned],
    ]


@pytest.mark.parametrize("unset", ["", "0", " 0 "])
def test_an_unset_or_zero_days_per_run_keeps_one_run_per_backfill(unset: str) -> None:
    assert backfill_policy({"HOOP_BACKFILL_DAYS_PER_RUN": unset}) == BackfillPolicy.single_run()
    assert backfill_policy({}) == BackfillPolicy.single_run()


@pytest.mark.parametrize("bad", ["seven", "1.5", "-2", "3d"])
def test_a_days_per_run_that_is_not_a_whole_number_of_days_fails_naming_the_variable(
    bad: str,
) -> None:
    with pytest.raises(ConfigError, match="HOOP_BACKFILL_DAYS_PER_RUN") as raised:
        backfill_policy({"HOOP_BACKFILL_DAYS_PER_RUN": bad})
    assert bad.strip() in str(raised.value)


def test_only_the_steps_that_use_the_warehouse_are_in_its_pool() -> None:
    job = defs.resolve_job_def("hoop_sync")
    pools = {node.name: node.definition.pool for node in job.graph.nodes}
    assert pools.pop("hoop__raw_sessions") is None
    assert pools.pop("hoop_lake_tables") is None
    # The warehouse load, the findings, the report and every check that reads the warehouse.
    assert "hoop_warehouse_tables" in pools
    assert pools and set(pools.values()) == {WAREHOUSE_POOL}


def test_a_run_whose_warehouse_step_waits_for_the_pool_reads_and_builds_its_days_meanwhile(
    hoop: Hoop, instance: DagsterInstance
) -> None:
    first, last = days_ago(4), days_ago(3)
    storage = instance.event_log_storage
    # Another run holds the warehouse's only slot.
    claimed = storage.claim_concurrency_slot(WAREHOUSE_POOL, "another-run", "its_load_step")
    assert claimed.is_claimed
    run = RunInThread(instance, first, last)
    try:
        # Until this run's warehouse step asks for the slot, which it gets only after its read
        # and build steps are done (a pending claim, not a clock, says it is waiting).
        while storage.get_concurrency_info(WAREHOUSE_POOL).pending_step_count == 0:
            assert run.thread.is_alive(), "the run ended without waiting for the pool"
            run.thread.join(0.2)
        waiting_with = {
            entry.dagster_event.asset_key
            for entry in instance.all_logs(
                _only_run_id(instance), of_type=DagsterEventType.ASSET_MATERIALIZATION
            )
            if entry.dagster_event is not None
        }
        assert {AssetKey(["hoop", "raw_sessions"]), AssetKey(["hoop", "lake", "sessions"])} <= (
            waiting_with
        )
        assert not any(key.path[1] == "warehouse" for key in waiting_with)
        assert not hoop.warehouse.exists()
    finally:
        storage.free_concurrency_slot_for_step("another-run", "its_load_step")
    result = run.join()
    assert result.success
    for day in (first, last):
        assert _loaded_ids(hoop, day) == hoop.truth(day)


def test_two_runs_of_different_days_at_once_load_every_day_exactly_once(
    hoop: Hoop, dagster_home: Path, instance: DagsterInstance
) -> None:
    older = start_run_process(dagster_home, days_ago(4), days_ago(3))
    newer = start_run_process(dagster_home, days_ago(2), days_ago(1))
    for run in (older, newer):
        output, _ = run.communicate(timeout=RUN_SECONDS)
        assert run.returncode == 0, output[-4000:]
    assert len(instance.get_runs()) == 2
    for day in (days_ago(4), days_ago(3), days_ago(2), days_ago(1)):
        assert _loaded_ids(hoop, day) == hoop.truth(day), day
    for table in schema.DAY_TABLES:
        if not table.key:
            continue
        key = ", ".join(table.key)
        duplicated = hoop.query(
            f"SELECT count(*) FROM (SELECT {key} FROM {table.name} GROUP BY ALL HAVING count(*) > 1)"
        )
        assert duplicated == [(0,)], table.name
    # Days built by two runs at once still form one verifiable chain of manifests.
    checked, problems = manifest.verify(hoop.data_dir, days_ago(4), days_ago(1))
    assert checked == [days_ago(4), days_ago(3), days_ago(2), days_ago(1)]
    assert problems == []


def _loaded_ids(hoop: Hoop, day: date) -> set[str]:
    return {r[0] for r in hoop.query("SELECT session_id FROM sessions WHERE start_day = ?", day)}


def _only_run_id(instance: DagsterInstance) -> str:
    runs = instance.get_runs()
    assert len(runs) == 1
    return runs[0].run_id
