"""The ingest driver killed (SIGKILL to it and its JVM) in the middle of its Delta writes, then
run again: the bronze tables end exactly as one uninterrupted ingest leaves them: every landed
record once, none twice.

Two moments: while a bronze table's parquet files are being staged (nothing committed yet), and
right after the first bronze commit, before the ledger of ingested files is written (the rerun
must learn from bronze itself that those files are in).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from deepspark.pipeline import run_pipeline
from deepspark.run import Run
from deepspark.tables import Tables

from tests.small_conf import REPO, cli_command, cli_environment, load_small_config, write_small_conf

pytestmark = pytest.mark.slow
SOURCES = ["customers", "orders", "reviews", "digits"]


def small_run(spark, folder: Path, run_id: str) -> Run:
    config = load_small_config(write_small_conf(folder))
    return Run(config, spark, Tables(spark, config), run_id)


def bronze_records(run: Run) -> dict[str, Counter]:
    """Per bronze table: each record as (landed file relative to landing, content hash)."""
    landing = str(run.config.landing_root)
    found = {}
    for source in SOURCES:
        rows = run.tables.read(f"bronze.{source}").select("_source_file", "_row_hash").collect()
        found[source] = Counter((r._source_file.split(landing, 1)[-1], r._row_hash) for r in rows)
    return found


@pytest.fixture(scope="module")
def reference(spark, tmp_path_factory):
    """Sample landing files and the bronze one uninterrupted ingest makes of them."""
    run = small_run(spark, tmp_path_factory.mktemp("reference") / "conf", "reference")
    run_pipeline(run, ["generate", "ingest"])
    return run.config.landing_root, bronze_records(run)


def kill_ingest_when(conf: Path, moment) -> None:
    driver = subprocess.Popen(
        cli_command(conf, "ingest"),
        cwd=REPO,
        env=cli_environment(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 300
    try:
        while not moment():
            assert driver.poll() is None, (
                "ingest ended before the moment came:\n" + driver.stderr.read().decode()
            )
            assert time.monotonic() < deadline, "the moment never came"
            time.sleep(0.05)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and its JVM
        driver.wait(timeout=60)


@pytest.mark.parametrize("moment", ["while_staging", "between_bronze_and_ledger"])
def test_an_ingest_killed_mid_write_and_run_again_lands_every_record_once(spark, tmp_path, reference, moment):
    landing, expected = reference
    run = small_run(spark, tmp_path / "conf", "rerun")
    shutil.copytree(landing, run.config.landing_root)
    bronze = Path(run.config.tables_root) / "bronze"

    def staging():
        # A write's staging folder lives from its Spark job's start until its files are moved.
        return any(bronze.glob("*/_staging/*/"))

    def first_commit():
        return any(bronze.glob("*/_delta_log/00000000000000000000.json"))

    kill_ingest_when(tmp_path / "conf", staging if moment == "while_staging" else first_commit)
    ledger = Path(run.config.tables_root) / "meta" / "ingested_files"
    assert not ledger.exists(), "the kill came too late: ingest had finished"
    committed = sorted(p.parent.parent.name for p in bronze.glob("*/_delta_log/*.json"))
    assert (committed == []) if moment == "while_staging" else (committed != [])

    run_pipeline(run, ["ingest"])
    assert bronze_records(run) == expected  # the same records, each as many times: none lost or doubled
