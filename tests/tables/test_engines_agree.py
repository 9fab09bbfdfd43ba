"""The pipeline's tables are the same on both Delta engines: the tabular stages of the small
sample run once per engine in this process, then compared table by table (the same tables, row
counts, and a hash of the sorted rows, the columns naming the run or its time left out)."""

from __future__ import annotations

import hashlib

import pytest
from deepspark.pipeline import run_pipeline
from deepspark.run import Run
from deepspark.tables import Tables
from pyspark.sql import functions as F

from tests.conftest import on_engine, share_moment
from tests.small_conf import load_small_config, write_small_conf

pytestmark = pytest.mark.slow
STAGES = ["generate", "ingest", "clean", "features"]
COMPARED_LAYERS = ("bronze", "silver", "quarantine", "gold")
OF_THE_RUN = {"_batch_id", "_ingested_at", "_source_file", "batch_id", "run_id", "quarantined_at"}


def contents(tables: Tables, name: str) -> tuple[int, str]:
    df = tables.read(name)
    columns = sorted(c for c in df.columns if c not in OF_THE_RUN)
    rows = df.select(F.to_json(F.struct(*columns)).alias("row")).orderBy("row").collect()
    return len(rows), hashlib.sha256("\n".join(r.row for r in rows).encode()).hexdigest()


@pytest.fixture(scope="module")
def runs(spark, tmp_path_factory):
    found = {}
    moment = tmp_path_factory.mktemp("moment")  # one 'now' to clean for both runs, even across midnight
    for engine in ("rs", "spark"):
        conf = write_small_conf(tmp_path_factory.mktemp(f"agree-{engine}") / "conf")
        config = on_engine(load_small_config(conf), engine)
        tables = Tables(spark, config)
        run = Run(config, spark, tables, f"agree-{engine}")
        share_moment(moment, run.run_dir)
        run_pipeline(run, STAGES)
        found[engine] = tables
    return found


def test_both_engines_write_the_same_tables_with_the_same_rows(runs):
    names = {
        engine: sorted(n for n in t.list() if n.split(".")[0] in COMPARED_LAYERS)
        for engine, t in runs.items()
    }
    assert names["rs"] == names["spark"] and len(names["rs"]) >= 8
    differ = {
        name: (contents(runs["rs"], name), contents(runs["spark"], name))
        for name in names["rs"]
        if contents(runs["rs"], name) != contents(runs["spark"], name)
    }
    assert differ == {}
