"""A user's own tabular export through ingest and clean, by configuration alone: one test per
convention real exports have (NA tokens, integral decimals, delimited lists, multi-line quoted
text, bytes that are not UTF-8, a file landed twice, a source with nothing yet, no natural key).
Every clean run checks the accounting: rows in = out + quarantined + deduplicated. The
conventions share one project and one run (``exports``); what needs runs of its own (a replay,
a config error) has them."""

from __future__ import annotations

import shutil

import pytest
from deepspark.config import CleanConfig, ConfigError, IngestConfig, SourceConfig
from deepspark.pipeline import run_pipeline
from deepspark.quarantine import QUARANTINE
from deepspark.run import Run, StageFailed
from deepspark.tables import Tables
from pyspark.sql import functions as F


def csv(columns: list[str], path: str = "export", **extra) -> dict:
    return {"format": "csv", "path": path, "columns": columns, **extra}


def project(config, sources: dict, datasets: dict, **ingest):
    """The test's config with only these sources and datasets (validated as YAML would be)."""
    return config.model_copy(
        update={
            "ingest": IngestConfig.model_validate({"sources": sources, **ingest}),
            "clean": CleanConfig.model_validate({"datasets": datasets}),
        }
    )


def land(config, source: str, name: str, content: str | bytes) -> None:
    """Write a file into the landing folder of ``source``."""
    path = config.landing_root / config.ingest.sources[source].path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)


def run(config, spark, tables, run_id: str, stages=("ingest", "clean")) -> Run:
    done = Run(config, spark, tables, run_id)
    run_pipeline(done, list(stages))
    for counts in done.results.get("clean").metrics.values() if "clean" in done.results else []:
        assert (
            counts["rows_in"] == counts["rows_out"] + counts["rows_quarantined"] + counts["rows_deduplicated"]
        )
    return done


def config_error(config, spark, tables, run_id: str) -> str:
    """The one-line ConfigError that stopped the run (run_pipeline re-raises it as StageFailed)."""
    with pytest.raises(StageFailed) as raised:
        run(config, spark, tables, run_id)
    assert isinstance(raised.value.__cause__, ConfigError)
    message = str(raised.value.__cause__)
    assert "\n" not in message
    return message


def quarantined(tables, dataset: str) -> list[tuple[str, str]]:
    rows = tables.read(QUARANTINE).filter(F.col("dataset") == dataset).select("reason", "rule").collect()
    return sorted((r.reason, r.rule) for r in rows)


MULTILINE = 'id,text\n1,"first line\nsecond line"\n2,"one line"\n3,"a\n\nb"\n'
SOURCES = {
    "na": csv(["id", "score", "city"], "na", null_values=["NA", "N/A"]),
    "decimals": csv(["id", "qty"], "decimals"),
    "baskets": csv(["id", "items", "qty"], "baskets"),
    "people": csv(["id", "first", "last", "height_cm"], "people"),
    "notes": csv(["id", "text"], "notes", options={"multiLine": True}),
    "notes_split": csv(["id", "text"], "notes_split"),
    "latin1": csv(["id", "city", "note"], "latin1"),
    "texts": csv(["text", "label"], "texts"),
    "empty": csv(["id"], "empty"),
    "mostly_bad": csv(["id", "qty"], "mostly_bad"),
    "cut_short": csv(["id", "a", "b"], "cut_short"),
}
DATASETS = {
    "na": {"keys": ["id"], "columns": {"id": {"type": "int"}, "score": {"type": "double"}}},
    "decimals": {"keys": ["id"], "columns": {"id": {"type": "bigint"}, "qty": {"type": "int"}}},
    "baskets": {
        "keys": ["id"],
        "split": {"items": "|", "qty": ";"},
        "columns": {"id": {"type": "int"}, "items": {"type": "array<string>"}, "qty": {"type": "array<int>"}},
    },
    "people": {
        "keys": ["id"],
        "derive": {"name": "concat_ws(' ', first, last)", "height_m": "height_cm / 100"},
        "columns": {"height_m": {"type": "double", "range": {"max": 2.5}}},
    },
    "notes": {"keys": ["id"], "columns": {"id": {"type": "int"}}},
    "notes_split": {"keys": ["id"], "columns": {"id": {"type": "int"}}},
    "latin1": {"keys": ["id"]},
    "texts": {"surrogate_key": {"column": "text_id", "columns": ["text", "label"]}},
    "empty": {"keys": ["id"]},
    "mostly_bad": {"keys": ["id"], "columns": {"id": {"type": "int"}, "qty": {"type": "int"}}},
    "cut_short": {"keys": ["id"]},
}
FILES = {
    "na": "id,score,city\n1,2.5,Oslo\n2,NA,N/A\n3, N/A ,NA \n4,x,Rome\n",
    "decimals": "id,qty\n1.0,517.0\n2,517\n3,517.5\n4.00,-3.\n",
    "baskets": "id,items,qty\n1,milk| bread ||eggs,1;2;3\n2,tea,x;1\n3,,\n",
    "people": "id,first,last,height_cm\n1,Ada,Lovelace,165\n2,Tall,One,300\n",
    "notes": MULTILINE,
    "notes_split": MULTILINE,
    "latin1": b"id,city,note\n"
    + "1,Zürich,ok\n".encode("latin-1")
    + "2,Zürich,é\n".encode("latin-1")
    + b"3,Oslo,x\n",
    "texts": "text,label\ngood,1\nbad,0\n good ,1\ngood,0\n",
    "mostly_bad": "id,qty\n1,x\n2,y\n3,3\n",
    "cut_short": "id,a,b\n1,x\n2,y,z\n3,z,w\n4,q,r\n",  # a row cut short: malformed, no open quote
}


@pytest.fixture(scope="module")
def exports(spark, base_config, tmp_path_factory):
    """One project of eleven sources, each an export convention, through ingest and clean once."""
    folder = tmp_path_factory.mktemp("exports")
    run_config = base_config.run.model_copy(
        update={"data_root": folder / "data", "runs_dir": folder / "runs"}
    )
    conf = project(base_config.model_copy(update={"run": run_config}), SOURCES, DATASETS)
    for source, content in FILES.items():
        land(conf, source, "export.csv", content)
    tables = Tables(spark, conf)
    return run(conf, spark, tables, "exports"), tables


def silver(exports, dataset: str) -> list:
    return exports[1].read(f"silver.{dataset}").collect()


def test_na_tokens_are_nulls_not_type_errors(exports):
    rows = {r.id: (r.score, r.city) for r in silver(exports, "na")}
    assert rows == {1: (2.5, "Oslo"), 2: (None, None), 3: (None, None)}
    assert quarantined(exports[1], "na") == [("type_coercion", "score: not a double")]


def test_integral_decimals_are_integers_and_fractions_are_quarantined(exports):
    assert {r.id: r.qty for r in silver(exports, "decimals")} == {1: 517, 2: 517, 4: -3}
    assert quarantined(exports[1], "decimals") == [("type_coercion", "qty: not a int")]


def test_a_delimited_column_splits_into_a_typed_array(exports):
    rows = {r.id: (r["items"], r.qty) for r in silver(exports, "baskets")}
    assert rows == {1: (["milk", "bread", "eggs"], [1, 2, 3]), 3: (None, None)}
    assert exports[1].read("silver.baskets").schema["qty"].dataType.simpleString() == "array<int>"
    assert quarantined(exports[1], "baskets") == [("type_coercion", "qty: not a array<int>")]


def test_derived_columns_are_made_before_typing_and_take_rules(exports):
    (row,) = silver(exports, "people")
    assert (row.name, row.height_m) == ("Ada Lovelace", 1.65)
    assert quarantined(exports[1], "people") == [("out_of_range", "height_m: above 2.5")]


def test_multiline_quoted_text_reads_whole_with_the_option(exports):
    texts = {r.id: r.text for r in silver(exports, "notes")}
    assert texts == {1: "first line\nsecond line", 2: "one line", 3: "a\n\nb"}
    assert exports[0].results["ingest"].metrics["notes"]["issues"] == {}


def test_multiline_text_without_the_option_warns_naming_it(exports):
    ingested = exports[0].results["ingest"]
    assert ingested.metrics["notes_split"]["issues"]["malformed"] > 0
    assert ingested.metrics["cut_short"]["issues"] == {"malformed": 1}
    hints = [note for note in ingested.notes if "multiLine" in note]  # none with it, none for cut_short
    assert len(hints) == 1 and "set ingest.sources.notes_split.options.multiLine: true" in hints[0]
    assert ingested.status == "warning"


def test_values_that_are_not_utf8_are_counted_per_column(exports):
    ingested = exports[0].results["ingest"]
    assert ingested.metrics["latin1"]["redecoded"] == {"city": 2, "note": 1}
    line = next(d for d in ingested.details if d.startswith("latin1:"))
    assert line.endswith("not UTF-8, decoded as ISO-8859-1: city 2, note 1")
    assert {r.city for r in silver(exports, "latin1")} == {"Zürich", "Oslo"}
    assert "_redecoded" not in exports[1].read("silver.latin1").columns


def test_a_source_with_no_files_is_reported_and_nothing_downstream_fails(exports):
    done = exports[0]
    assert "empty: no files landed, 0 rows" in done.results["ingest"].details
    assert done.results["clean"].metrics["empty"]["rows_in"] == 0
    assert not exports[1].exists("silver.empty")


def test_a_dataset_without_a_natural_key_gets_a_surrogate_key(exports):
    rows = silver(exports, "texts")
    assert sorted((r.text, r.label) for r in rows) == [("bad", "0"), ("good", "0"), ("good", "1")]
    assert all(len(r.text_id) == 64 for r in rows) and len({r.text_id for r in rows}) == 3
    assert exports[0].results["clean"].metrics["texts"]["rows_deduplicated"] == 1  # " good " is "good"


def test_clean_prints_each_datasets_top_quarantine_rules_and_warns_on_most_rows(exports):
    cleaned = exports[0].results["clean"]
    assert "decimals: in=4 out=3 quarantined=1 deduplicated=0; top: qty: not a int (1)" in cleaned.details
    assert len(cleaned.details) == len(DATASETS)
    warned = [note for note in cleaned.notes if "rows quarantined" in note]
    assert warned == [
        "clean mostly_bad: 2 of 3 rows quarantined, 2 for 'qty: not a int'; check clean.datasets.mostly_bad "
        "(types, formats, decimal, null_values of the source) against quarantine.rows"
    ]
    assert cleaned.status == "warning"


def test_an_array_type_on_text_without_split_names_the_key_and_the_fix(spark, config, tables):
    conf = project(
        config,
        {"baskets": csv(["id", "items"])},
        {"baskets": {"keys": ["id"], "columns": {"items": {"type": "array<string>"}}}},
    )
    land(conf, "baskets", "a.csv", "id,items\n1,a|b\n")
    message = config_error(conf, spark, tables, "no-split")
    assert "key 'clean.datasets.baskets.columns.items.type'" in message
    assert "split: {items: '|'}" in message


def test_a_key_or_derive_that_does_not_fit_the_data_is_a_config_error(spark, config, tables):
    missing_key = project(config, {"data": csv(["id", "name"])}, {"data": {"keys": ["user_id"]}})
    land(missing_key, "data", "a.csv", "id,name\n1,a\n")
    message = config_error(missing_key, spark, tables, "bad-key")
    assert (
        "key 'clean.datasets.data.keys' names column 'user_id'" in message and "one of: id, name" in message
    )
    bad_derive = project(
        config, {"data": csv(["id", "name"])}, {"data": {"keys": ["id"], "derive": {"n": "length(nme)"}}}
    )
    land(bad_derive, "data", "a.csv", "id,name\n1,a\n")
    assert "key 'clean.datasets.data.derive.n' does not analyse" in config_error(
        bad_derive, spark, tables, "bad-derive"
    )


def test_reader_options_take_plain_yaml_scalars():
    source = SourceConfig.model_validate(
        {"format": "csv", "path": "x", "columns": ["a"], "options": {"multiLine": True, "maxColumns": 100}}
    )
    assert source.options == {"multiLine": "true", "maxColumns": "100"}


def test_a_file_landed_again_under_a_new_name_is_a_skipped_replay(spark, config, tables):
    conf = project(
        config, {"data": csv(["id"])}, {"data": {"keys": ["id"], "columns": {"id": {"type": "int"}}}}
    )
    land(conf, "data", "export.csv", "id\n1\n2\n")
    run(conf, spark, tables, "first")
    folder = conf.landing_root / "export"
    shutil.copy(folder / "export.csv", folder / "export (1).csv")
    second = run(conf, spark, tables, "replay")
    metrics = second.results["ingest"].metrics["data"]
    assert (metrics["files_new"], metrics["files_replayed"], metrics["rows"]) == (0, 1, 0)
    assert any("repeats" in note and "(replayed)" in note for note in second.results["ingest"].notes)
    assert tables.read("bronze.data").count() == 2

    forced = conf.model_copy(update={"ingest": conf.ingest.model_copy(update={"replays": "ingest"})})
    shutil.copy(folder / "export.csv", folder / "export (2).csv")
    third = run(forced, spark, tables, "forced")
    assert third.results["ingest"].metrics["data"]["rows"] == 2
    assert tables.read("silver.data").count() == 2  # the same keys, merged again
