"""A table one engine writes, the other reads, merges, time-travels, compacts and vacuums; and
exactly-once writes (Delta application transactions) on each engine and across the two."""

from __future__ import annotations

import threading

import pytest
from deepspark.lineage import MODELS_TABLE, register_model
from deepspark.tables import Tables, Txn
from deltalake import DeltaTable

from tests.conftest import on_engine

pytestmark = pytest.mark.slow  # delta-spark on every test
SCHEMA = "id long, country string, amount double"


def frame(spark, rows):
    return spark.createDataFrame(rows, SCHEMA)


def rows_of(df):
    return sorted(tuple(r) for r in df.collect())


def at_once(call, threads: int) -> tuple[list, list[Exception]]:
    """``call(0)`` .. ``call(threads - 1)`` in as many threads at once: (results, errors)."""
    results, errors = [], []

    def one(i):
        try:
            results.append(call(i))
        except Exception as error:  # the outcome under test
            errors.append(error)

    started = [threading.Thread(target=one, args=(i,)) for i in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join(timeout=600)
    return results, errors


@pytest.fixture(params=[("rs", "spark"), ("spark", "rs")], ids=["rs-then-spark", "spark-then-rs"])
def pair(request, spark, config) -> tuple[Tables, Tables]:
    first, second = request.param
    return Tables(spark, on_engine(config, first)), Tables(spark, on_engine(config, second))


def test_each_engine_reads_merges_travels_compacts_and_vacuums_the_others_table(spark, pair):
    writer, other = pair
    writer.write(
        frame(spark, [(1, "FR", 1.0), (2, "DE", 2.0), (3, None, 3.0)]), "silver.x", partition_by=["country"]
    )
    writer.write(frame(spark, [(4, "FR", 4.0)]), "silver.x")
    writer.merge(frame(spark, [(2, "DE", 20.0)]), "silver.x", ["id"])
    at_two = [(1, "FR", 1.0), (2, "DE", 20.0), (3, None, 3.0), (4, "FR", 4.0)]

    assert rows_of(other.read("silver.x")) == at_two
    assert rows_of(other.read("silver.x", version=0)) == [(1, "FR", 1.0), (2, "DE", 2.0), (3, None, 3.0)]
    assert [h["version"] for h in other.history("silver.x")] == [2, 1, 0]

    merged = other.merge(frame(spark, [(3, None, 30.0), (5, "ES", 5.0)]), "silver.x", ["id"])
    assert merged.metrics == {"rows_updated": 1, "rows_inserted": 1}
    at_three = [(1, "FR", 1.0), (2, "DE", 20.0), (3, None, 30.0), (4, "FR", 4.0), (5, "ES", 5.0)]
    assert rows_of(writer.read("silver.x")) == at_three

    other.compact("silver.x")
    other.write(frame(spark, [(9, "IT", 9.0)]), "silver.x", mode="overwrite")
    other.vacuum("silver.x", retention_hours=0)
    assert rows_of(writer.read("silver.x")) == [(9, "IT", 9.0)]
    assert writer.version("silver.x") == other.version("silver.x")
    writer.write(frame(spark, [(10, "IT", 10.0)]), "silver.x")
    assert rows_of(other.read("silver.x")) == [(9, "IT", 9.0), (10, "IT", 10.0)]

    protocol = DeltaTable(writer.path("silver.x")).protocol()
    assert (protocol.min_reader_version, protocol.min_writer_version) == (1, 2)  # no reader features
    assert "delta.enableDeletionVectors" in DeltaTable(writer.path("silver.x")).metadata().configuration


def test_a_transaction_is_committed_once_whichever_engine_writes_it_again(spark, pair):
    writer, other = pair
    first = writer.write(frame(spark, [(1, "FR", 1.0)]), "bronze.t", txn=Txn("ingest.t", 1))
    again = other.write(frame(spark, [(1, "FR", 1.0)]), "bronze.t", txn=Txn("ingest.t", 1))
    older = writer.write(frame(spark, [(0, "FR", 0.0)]), "bronze.t", txn=Txn("ingest.t", 0))
    later = other.write(frame(spark, [(2, "DE", 2.0)]), "bronze.t", txn=Txn("ingest.t", 2))

    assert not first.skipped and again.skipped and older.skipped and not later.skipped
    assert (again.version, again.rows_written, later.version) == (0, 0, 1)
    assert rows_of(writer.read("bronze.t")) == [(1, "FR", 1.0), (2, "DE", 2.0)]
    assert writer.txn_version("bronze.t", "ingest.t") == other.txn_version("bronze.t", "ingest.t") == 2
    assert writer.txn_version("bronze.t", "another.app") is None


@pytest.mark.parametrize("engine", ["rs", "spark"])
def test_writers_racing_with_one_transaction_commit_it_once(spark, config, engine):
    tables = Tables(spark, on_engine(config, engine))
    tables.write(frame(spark, [(0, "FR", 0.0)]), "bronze.r")
    results, errors = at_once(
        lambda i: tables.write(frame(spark, [(1, "FR", float(i))]), "bronze.r", txn=Txn("batch", 1)), 4
    )

    assert errors == []
    assert sorted(r.skipped for r in results) == [False, True, True, True]
    assert sorted(r.id for r in tables.read("bronze.r").collect()) == [0, 1]


@pytest.mark.parametrize("engine", ["rs", "spark"])
def test_eight_concurrent_registrations_of_one_model_get_eight_versions(spark, config, engine):
    tables = Tables(spark, on_engine(config, engine))
    entry = {
        "name": "digits_cnn",
        "kind": "cnn",
        "uri": "file:/models/x",
        "run_id": "r",
        "table_name": "gold.digits",
        "table_version": 0,
        "sources": {},
        "validation": {},
        "config_hash": "h",
        "fingerprint": "f",
        "metrics": {},
    }
    register_model(tables, entry)  # the table exists: the race is on its versions, not its creation
    versions, errors = at_once(lambda i: register_model(tables, {**entry, "run_id": f"run-{i}"}), 8)

    assert errors == []
    assert sorted(versions) == list(range(2, 10))
    stored = tables.read(MODELS_TABLE).collect()
    assert sorted(r.model_version for r in stored) == list(range(1, 10))
    assert {r.run_id for r in stored if r.model_version > 1} == {f"run-{i}" for i in range(8)}
