"""Every job through spark-submit on a real Spark standalone cluster: a master and two workers
(one core each) started from the installed pyspark on 127.0.0.1, stopped by their process ids.

The jobs go through deploy/submit.sh, as a user submits them; executors are separate JVMs and
Python workers on the workers, so tables, models and Horovod ranks cross process boundaries.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pyspark
import pytest

from tests.small_conf import REPO, write_small_conf

pytestmark = pytest.mark.slow
SPARK_HOME = Path(pyspark.__file__).parent
WORKERS = 2
JOBS = ["generate", "ingest", "clean", "validate", "features", "analytics", "train", "predict", "report"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _master_state(ui_port: int) -> dict:
    """The master's own view (its web UI's JSON): workers, running and completed applications."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as response:
            return json.load(response)
    except OSError:
        return {}


@dataclass
class Standalone:
    url: str
    ui_port: int

    def completed_apps(self) -> list[dict]:
        return _master_state(self.ui_port).get("completedapps", [])


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """A running master with two 1-core workers."""
    home = tmp_path_factory.mktemp("standalone")
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1"}
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    port, ui_port = _free_port(), _free_port()
    url = f"spark://127.0.0.1:{port}"
    commands = [
        [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1"]
        + ["--port", str(port), "--webui-port", str(ui_port)]
    ] + [
        [spark_class, "org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1", "--cores", "1"]
        + ["--memory", "4g", "--work-dir", str(home / f"work-{i}"), "--webui-port", str(_free_port())]
        for i in range(WORKERS)
    ]
    processes = []
    try:
        for i, command in enumerate(commands):
            log = (home / f"daemon-{i}.log").open("w")
            processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env))
            if i == 0:
                time.sleep(3)  # workers register with a master that listens
        deadline = time.monotonic() + 120
        while _master_state(ui_port).get("aliveworkers", 0) < WORKERS:
            assert time.monotonic() < deadline, f"workers did not register; logs in {home}"
            assert all(p.poll() is None for p in processes), f"a daemon exited; logs in {home}"
            time.sleep(1)
        yield Standalone(url, ui_port)
    finally:
        for process in reversed(processes):  # spark-class execs java: these are the JVMs' ids
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def submit(master: str, job: str, conf: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "MASTER": master,
        "TOTAL_EXECUTOR_CORES": str(WORKERS),
        "EXECUTOR_MEMORY": "1g",
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "DEEPSPARK_SECRET_PII_HMAC_KEY": "cluster-test-key",
    }
    command = [str(REPO / "deploy" / "submit.sh"), job, "--conf-dir", str(conf), "--env", "small", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)


def test_every_job_runs_through_spark_submit_on_a_standalone_cluster(standalone, tmp_path):
    conf = write_small_conf(tmp_path / "conf")
    run_id = "standalone-1"
    for job in JOBS:
        done = submit(standalone.url, job, conf, *([] if job == "generate" else ["--run-id", run_id]))
        # Under spark-submit the driver's Python writes its stderr to spark-submit's stdout.
        assert done.returncode == 0, f"{job}:\n{(done.stdout + done.stderr)[-4000:]}"
    # Each job was an application of this cluster, and finished there.
    apps = {app["name"]: app["state"] for app in standalone.completed_apps()}
    assert apps == {f"deepspark-{job}": "FINISHED" for job in JOBS}

    run_dir = conf / "runs" / run_id
    summary = json.loads((run_dir / "summary.json").read_text())
    assert list(summary["stages"]) == JOBS[1:]
    assert all(stage["status"] in ("ok", "warning") for stage in summary["stages"].values())
    clean = summary["stages"]["clean"]
    assert clean["rows_in"] > 0 and all(m["balanced"] for m in clean["metrics"].values())
    trained = summary["stages"]["train"]["metrics"]
    assert {m["ranks"] for m in trained.values()} == {2}  # Horovod: one rank per executor core
    assert summary["stages"]["predict"]["metrics"]["digits"]["rows"] == 5000
    assert (run_dir / "report.html").is_file()

    listing = subprocess.run(
        [sys.executable, "-m", "deepspark.cli", "tables", "--conf-dir", str(conf), "--env", "small"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    for table in ["bronze.orders", "silver.orders", "gold.segments", "gold.digits", "ml.models"]:
        assert table in listing.stdout, table
