"""The whole pipeline through spark-submit on a real Spark standalone cluster: a master and two
workers (one core each) started from the installed pyspark on 127.0.0.1, stopped by their ids.

The run goes through deploy/submit.sh, as a user submits it; executors are separate JVMs and
Python workers on the workers, so tables, models and Horovod ranks cross process boundaries.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from deepspark.pipeline import STAGE_NAMES
from deltalake import DeltaTable

from tests.cluster.standalone import standalone_cluster, submit
from tests.small_conf import write_small_conf

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    with standalone_cluster(tmp_path_factory.mktemp("standalone")) as cluster:
        yield cluster


def test_the_whole_pipeline_runs_through_spark_submit_on_a_standalone_cluster(standalone, tmp_path):
    """One application for every stage (jobs/run_pipeline.py), as a user submits a whole run;
    each stage's own job is one line onto the same CLI (tests/foundation/test_layers.py), and
    tests/cluster/test_executor_loss.py submits one of them here too."""
    conf = write_small_conf(tmp_path / "conf")
    run_id = "standalone-1"
    done = submit(standalone.url, "run_pipeline", conf, "--run-id", run_id)
    # Under spark-submit the driver's Python writes its stderr to spark-submit's stdout.
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    # The run was an application of this cluster, and finished there.
    apps = {app["name"]: app["state"] for app in standalone.completed_apps()}
    assert apps == {"deepspark-run_pipeline": "FINISHED"}

    run_dir = conf / "runs" / run_id
    summary = json.loads((run_dir / "summary.json").read_text())
    assert tuple(summary["stages"]) == STAGE_NAMES
    assert all(stage["status"] in ("ok", "warning") for stage in summary["stages"].values())
    clean = summary["stages"]["clean"]
    assert clean["rows_in"] > 0 and all(m["balanced"] for m in clean["metrics"].values())
    trained = summary["stages"]["train"]["metrics"]
    assert {m["ranks"] for m in trained.values()} == {2}  # Horovod: one rank per executor core
    assert summary["stages"]["predict"]["metrics"]["digits"]["rows"] == 5000
    assert (run_dir / "report.html").is_file()
    # deploy/submit.sh shipped the environment's delta-spark jars (--jars): auto chose delta-spark.
    for table in ("bronze/orders", "silver/orders", "gold/digits"):
        commits = DeltaTable(str(conf / "data" / "tables" / table)).history()
        assert {c.get("engineInfo") for c in commits} == {"Apache-Spark/4.0.5 Delta-Lake/4.0.1"}, table

    listing = subprocess.run(
        [sys.executable, "-m", "deepspark.cli", "tables", "--conf-dir", str(conf), "--env", "small"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    for table in ["bronze.orders", "silver.orders", "gold.segments", "gold.digits", "ml.models"]:
        assert table in listing.stdout, table
