"""A worker and its executor killed (SIGKILL) while the clean job's tasks run on it, on a real
standalone cluster: Spark reruns the lost tasks (and the map output the executor held) on the
other worker, the job succeeds, and silver and quarantine equal those of an undisturbed run of
the same stage on the same bronze tables."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from deepspark.pipeline import run_pipeline
from deepspark.run import Run
from deepspark.tables import Tables

from tests.cluster.standalone import free_port, standalone_cluster, submit
from tests.conftest import TEST_HMAC_KEY, share_moment
from tests.small_conf import EXECUTOR_JAVA, load_small_config, write_small_conf

pytestmark = pytest.mark.slow
RUN_ID = "executor-loss"
CUSTOMERS = 4000  # enough rows that clean's tasks last long enough to be caught running
COMPARED = ["silver.customers", "silver.orders", "silver.reviews"]


def _driver_api(ui_port: int, path: str):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/api/v1/{path}", timeout=2) as reply:
            return json.load(reply)
    except (OSError, ValueError):  # not up yet, or a page that is not JSON while it starts
        return None


def _executor_pid(worker_pid: int, executor_id: str) -> int | None:
    """The executor JVM the worker launched for ``executor_id`` (a child of the worker)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        flag = b"--executor-id"
        if (
            parent == worker_pid
            and flag in arguments
            and arguments[arguments.index(flag) + 1] == executor_id.encode()
        ):
            return int(entry.name)
    return None


def kill_a_busy_executor(cluster, ui_port: int, after_jobs: int, record: dict) -> None:
    """Once ``after_jobs`` jobs of the application have succeeded, kill the first executor seen
    running a task, with its worker; ``record`` says which, and what it was running."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        apps = _driver_api(ui_port, "applications") or []
        if apps:
            app = apps[0]["id"]
            jobs = _driver_api(ui_port, f"applications/{app}/jobs?status=succeeded") or []
            executors = _driver_api(ui_port, f"applications/{app}/executors") or []
            busy = [e for e in executors if e["id"] != "driver" and e["activeTasks"] > 0]
            if len(jobs) >= after_jobs and busy:
                for worker in cluster.workers:
                    executor = _executor_pid(worker.pid, busy[0]["id"])
                    if executor is not None:
                        os.kill(executor, signal.SIGKILL)
                        worker.kill()
                        record.update(executor=busy[0]["id"], active_tasks=busy[0]["activeTasks"])
                        record["jobs_done"] = len(jobs)
                        return
        time.sleep(0.05)


def small_config(folder: Path, ui_port: int | None = None):
    spark = {"ui_enabled": True, "conf": {**EXECUTOR_JAVA, "spark.ui.port": str(ui_port)}} if ui_port else {}
    conf = write_small_conf(folder, generate={"customers": CUSTOMERS}, spark=spark)
    return conf, load_small_config(conf)


def test_a_worker_killed_mid_stage_changes_nothing_in_the_output(spark, tmp_path):
    # Bronze once, in this process; an undisturbed clean of it is the reference.
    _, reference = small_config(tmp_path / "reference")
    tables = Tables(spark, reference)
    run_pipeline(Run(reference, spark, tables, "bronze"), ["generate", "ingest"])

    with standalone_cluster(tmp_path / "cluster") as cluster:
        ui_port = free_port()  # chosen once the cluster's daemons hold theirs, so none of theirs
        conf, disturbed = small_config(tmp_path / "disturbed", ui_port)
        shutil.copytree(reference.run.data_root, disturbed.run.data_root)
        run_pipeline(Run(reference, spark, tables, RUN_ID), ["clean"])
        share_moment(reference.run.runs_dir / RUN_ID, disturbed.run.runs_dir / RUN_ID)  # as a rerun's
        record: dict = {}
        killer = threading.Thread(target=kill_a_busy_executor, args=(cluster, ui_port, 3, record))
        killer.start()
        done = submit(cluster.url, "clean", conf, "--run-id", RUN_ID, key=TEST_HMAC_KEY)
        killer.join(timeout=60)
        log = done.stdout + done.stderr
        assert done.returncode == 0, log[-4000:]
        assert record.get("active_tasks", 0) > 0, "no executor was caught running a task"
        assert f"Lost executor {record['executor']}" in log  # Spark saw it go, and carried on
        assert {app["name"]: app["state"] for app in cluster.completed_apps()} == {
            "deepspark-clean": "FINISHED"
        }

    summary = json.loads((disturbed.run.runs_dir / RUN_ID / "summary.json").read_text())
    assert summary["stages"]["clean"]["status"] == "ok"
    assert all(m["balanced"] for m in summary["stages"]["clean"]["metrics"].values())
    after = Tables(spark, disturbed)
    for name in COMPARED:
        expected, got = tables.read(name), after.read(name)
        assert got.count() == expected.count() > 0, name
        assert got.exceptAll(expected).count() == 0 and expected.exceptAll(got).count() == 0, name
    quarantine = ["dataset", "stage", "reason", "rule", "record", "row_hash"]
    expected = tables.read("quarantine.rows").select(*quarantine)
    got = after.read("quarantine.rows").select(*quarantine)
    assert got.count() == expected.count() > 0
    assert got.exceptAll(expected).count() == 0 and expected.exceptAll(got).count() == 0
