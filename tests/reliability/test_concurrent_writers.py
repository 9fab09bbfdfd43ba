"""Two writers on one table at once: the slow one opens its snapshot and starts computing its
rows, and waits there while the fast one commits; then it commits on a stale snapshot. Whatever
the outcome, the table stays a valid Delta table (delta-rs reads it) and no committed or retried
row is lost."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from deepspark.tables import ConcurrentWriteError
from deltalake import DeltaTable
from pyspark.sql import functions as F

pytestmark = pytest.mark.slow
SCHEMA = "id long, who string"
WAIT_SECONDS = 120  # a gate not opened by then lets the slow writer go, and the test fails


class Gate:
    """Two files in a folder: ``started`` once the slow writer computes its first row,
    ``opened`` once the fast writer is done; between them the slow writer waits."""

    def __init__(self, folder: Path) -> None:
        self.started, self.opened = folder / "started", folder / "opened"

    def hold(self, df):
        """``df``'s rows, computed by one task that marks ``started`` and waits for ``opened`` (a
        Python UDF on the local executor); cached, so a merge's several passes wait once."""
        started, opened = str(self.started), str(self.opened)

        @F.udf("boolean")
        def wait(_):
            Path(started).touch()
            deadline = time.monotonic() + WAIT_SECONDS
            while not Path(opened).exists() and time.monotonic() < deadline:
                time.sleep(0.02)
            return True

        return df.coalesce(1).filter(wait(F.col("id"))).cache()


@pytest.fixture
def gate(tmp_path):
    return Gate(tmp_path)


def frame(spark, ids, who):
    return spark.createDataFrame([(i, who) for i in ids], SCHEMA)


def race(gate, slow, fast):
    """Run ``slow`` in a thread until it computes its rows (its snapshot is open by then), run
    ``fast`` here, then let ``slow`` go on; returns (slow's outcome, fast's outcome): a result
    or the exception raised."""
    outcome = {}

    def run_slow():
        try:
            outcome["slow"] = slow()
        except Exception as error:  # the outcome under test
            outcome["slow"] = error

    thread = threading.Thread(target=run_slow)
    thread.start()
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while not gate.started.exists() and thread.is_alive():
            assert time.monotonic() < deadline, "the slow writer never computed its rows"
            time.sleep(0.02)
        outcome["fast"] = fast()
    finally:
        gate.opened.touch()
        thread.join(timeout=WAIT_SECONDS)
    assert not thread.is_alive()
    return outcome["slow"], outcome["fast"]


def ids(tables, name):
    return sorted(r.id for r in tables.read(name).collect())


def assert_valid(tables, name, expected_ids):
    """Spark and delta-rs (the log alone) agree on the rows."""
    assert ids(tables, name) == sorted(expected_ids)
    assert sorted(DeltaTable(tables.path(name)).to_pyarrow_table().column("id").to_pylist()) == sorted(
        expected_ids
    )


def test_two_appends_both_land(spark, tables, gate):
    tables.write(frame(spark, [0], "base"), "bronze.c")
    slow_rows = gate.hold(frame(spark, [1, 2], "slow"))
    slow, fast = race(
        gate,
        lambda: tables.write(slow_rows, "bronze.c"),
        lambda: tables.write(frame(spark, [3], "fast"), "bronze.c"),
    )
    assert (fast.version, slow.version) == (1, 2)  # the fast one committed first
    assert_valid(tables, "bronze.c", [0, 1, 2, 3])


def test_an_append_that_loses_to_an_overwrite_is_committed_again_on_top_of_it(spark, tables, gate):
    tables.write(frame(spark, [0], "base"), "bronze.c")
    slow_rows = gate.hold(frame(spark, [1], "slow"))
    slow, fast = race(
        gate,
        lambda: tables.write(slow_rows, "bronze.c"),
        lambda: tables.write(frame(spark, [9], "fast"), "bronze.c", mode="overwrite"),
    )
    assert (fast.version, slow.version) == (1, 2)
    assert_valid(tables, "bronze.c", [9, 1])  # as if the overwrite came first, then the append


def test_a_merge_that_loses_to_another_merge_fails_and_its_rerun_lands(spark, tables, gate):
    tables.write(frame(spark, [1, 2], "base"), "silver.c")
    slow_rows = gate.hold(frame(spark, [2, 3], "slow"))
    slow, fast = race(
        gate,
        lambda: tables.merge(slow_rows, "silver.c", ["id"]),
        lambda: tables.merge(frame(spark, [2, 4], "fast"), "silver.c", ["id"]),
    )
    assert fast.version == 1
    assert isinstance(slow, ConcurrentWriteError)
    assert "silver/c: another writer committed a conflicting change first" in str(slow)
    assert "run it again" in str(slow)
    assert_valid(tables, "silver.c", [1, 2, 4])  # the winner's version, nothing half-done
    assert tables.version("silver.c") == 1

    rerun = tables.merge(frame(spark, [2, 3], "slow"), "silver.c", ["id"])
    assert rerun.version == 2
    assert_valid(tables, "silver.c", [1, 2, 3, 4])
    owners = {r.id: r.who for r in tables.read("silver.c").collect()}
    assert owners == {1: "base", 2: "slow", 3: "slow", 4: "fast"}


def test_two_writers_creating_one_table_both_land(spark, tables, gate):
    slow_rows = gate.hold(frame(spark, [1], "slow"))
    slow, fast = race(
        gate,
        lambda: tables.write(slow_rows, "bronze.new"),
        lambda: tables.write(frame(spark, [2], "fast"), "bronze.new"),
    )
    assert (fast.version, slow.version) == (0, 1)
    assert_valid(tables, "bronze.new", [1, 2])


def test_a_creator_with_another_schema_is_refused_and_writes_nothing(spark, tables, gate):
    other = spark.createDataFrame([(1, 2.5)], "id long, amount double")
    slow_rows = gate.hold(other)
    slow, fast = race(
        gate,
        lambda: tables.write(slow_rows, "bronze.new"),
        lambda: tables.write(frame(spark, [2], "fast"), "bronze.new"),
    )
    assert fast.version == 0
    assert isinstance(slow, ConcurrentWriteError) and "different schema" in str(slow)
    assert_valid(tables, "bronze.new", [2])
    assert tables.version("bronze.new") == 0


def test_two_ingests_of_the_same_files_at_once_append_each_file_once(spark, config, tables):
    from deepspark.config import IngestConfig, SourceConfig
    from deepspark.pipeline import run_pipeline
    from deepspark.run import Run

    folder = config.landing_root / "people"
    folder.mkdir(parents=True)
    for part in range(3):
        rows = "".join(f"{part * 100 + i},name{i}\n" for i in range(50))
        (folder / f"part-{part}.csv").write_text("id,name\n" + rows)
    source = SourceConfig(format="csv", path="people", columns=["id", "name"])
    narrowed = config.model_copy(update={"ingest": IngestConfig(sources={"people": source})})
    runs = [Run(narrowed, spark, tables, f"ingest-{i}") for i in range(2)]
    errors = []

    def ingest(run):
        try:
            run_pipeline(run, ["ingest"])
        except Exception as error:  # the outcome under test
            errors.append(error)

    threads = [threading.Thread(target=ingest, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    assert errors == []
    bronze = tables.read("bronze.people")
    per_file = {
        r["_source_file"].rsplit("/", 1)[-1]: r["count"]
        for r in bronze.groupBy("_source_file").count().collect()
    }
    assert per_file == {"part-0.csv": 50, "part-1.csv": 50, "part-2.csv": 50}
    assert sorted(r.results["ingest"].rows_out for r in runs) == [0, 150]
