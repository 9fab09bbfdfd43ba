"""Bad raw input, one case per test: each ends in a clear error or a quarantine row with a
reason, and every landed row is accounted for (bronze = silver + quarantined + deduplicated)."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from deepspark.config import CleanConfig, DatasetCleaning, IngestConfig, SourceConfig
from deepspark.errors import describe
from deepspark.pipeline import run_pipeline
from deepspark.run import Run, StageFailed
from deepspark.stages.ingest import (
    LandedFile,
    executor_facts,
    find_replays,
    list_landed_files,
    local_facts,
    read_contents,
)
from deepspark.tables import hadoop_uri
from pyspark.sql import functions as F

HEADER = "id,name,amount,born\n"
PEOPLE = SourceConfig(format="csv", path="people", columns=["id", "name", "amount", "born"])
EVENTS = SourceConfig(format="json", path="events", ddl="id string, tags array<string>, value string")
PEOPLE_RULES = DatasetCleaning.model_validate(
    {
        "keys": ["id"],
        "columns": {
            "id": {"type": "bigint", "nulls": "drop"},
            "amount": {"type": "double"},
            "born": {"type": "date", "formats": ["yyyy-MM-dd", "dd/MM/yyyy"], "range": {"max": "now"}},
        },
    }
)
EVENTS_RULES = DatasetCleaning.model_validate({"keys": ["id"], "columns": {"id": {"type": "bigint"}}})


@pytest.fixture
def landing(config) -> Path:
    folder = config.landing_root
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def land(landing):
    def write(relative: str, content: bytes | str) -> Path:
        path = landing / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return path

    return write


@pytest.fixture
def run_stages(spark, config, tables):
    """Ingest + clean the ``people`` (CSV) and ``events`` (JSON) sources; returns the run."""
    counter = iter(range(1, 100))

    def run(stages=("ingest", "clean")) -> Run:
        sources = {
            n: s
            for n, s in {"people": PEOPLE, "events": EVENTS}.items()
            if (config.landing_root / s.path).exists()
        }
        rules = {n: r for n, r in {"people": PEOPLE_RULES, "events": EVENTS_RULES}.items() if n in sources}
        narrowed = config.model_copy(
            update={"ingest": IngestConfig(sources=sources), "clean": CleanConfig(datasets=rules)}
        )
        current = Run(narrowed, spark, tables, f"batch-{next(counter)}")
        run_pipeline(current, list(stages))
        return current

    return run


def quarantined(tables, dataset: str) -> list[dict]:
    rows = tables.read("quarantine.rows").filter(F.col("dataset") == dataset)
    return [r.asDict() for r in rows.orderBy("reason", "record").collect()]


def assert_balanced(run: Run, dataset: str, rows_in: int) -> dict:
    counts = run.results["clean"].metrics[dataset]
    assert counts["rows_in"] == rows_in
    assert counts["balanced"] and counts["rows_in"] == (
        counts["rows_out"] + counts["rows_quarantined"] + counts["rows_deduplicated"]
    )
    return counts


def test_a_truncated_csv_line_is_kept_raw_and_quarantined_as_malformed(land, run_stages, tables):
    land("people/a.csv", HEADER + "1,Anna,3.5,1990-01-01\n2,Ben\n")
    run = run_stages()
    assert_balanced(run, "people", 2)
    [row] = quarantined(tables, "people")
    assert (row["stage"], row["reason"], row["record"]) == ("ingest", "malformed", "2,Ben")
    assert tables.read("silver.people").count() == 1


def test_a_file_with_the_wrong_delimiter_is_schema_drift(land, run_stages, tables):
    land("people/a.csv", HEADER + "1,Anna,3.5,1990-01-01\n")
    land("people/b.csv", "id;name;amount;born\n2;Ben;4;1991-02-03\n3;Cleo;5;1992-03-04\n")
    run = run_stages()
    assert_balanced(run, "people", 3)
    drift = quarantined(tables, "people")
    assert [r["reason"] for r in drift] == ["schema_drift", "schema_drift"]
    assert "missing ['id', 'name', 'amount', 'born']" in drift[0]["rule"]
    assert "2;Ben;4;1991-02-03" in drift[0]["record"]


def test_a_header_beyond_ascii_is_the_declared_one_in_utf8_and_in_the_fallback(spark, config, tables, land):
    header = "id,größe,città\n"
    land("sizes/utf8.csv", "\ufeff" + header + "1,42,Torino\n")
    land("sizes/latin1.csv", (header + "2,43,Génova\n").encode("latin-1"))
    sizes = SourceConfig(format="csv", path="sizes", columns=["id", "größe", "città"])
    narrowed = config.model_copy(update={"ingest": IngestConfig(sources={"sizes": sizes})})
    run_pipeline(Run(narrowed, spark, tables, "sizes-1"), ["ingest"])
    rows = tables.read("bronze.sizes").select("id", "größe", "città", "_ingest_issue").collect()
    assert sorted(tuple(r) for r in rows) == [("1", "42", "Torino", None), ("2", "43", "Génova", None)]


def test_comment_and_blank_lines_before_the_header_are_skipped_as_spark_skips_them(
    spark, config, tables, land
):
    """With ``comment: "#"`` the header is the first line that is neither blank nor a comment
    (a vendor's note above it); without the option, that note is the header, and the file's
    drift says to set it."""
    body = "# Data source: a vendor\n\nid,price\n1,2.5\n# a note\n2,3.0\n"
    land("noted/a.csv", body)
    land("noted/notes.csv", "# nothing but a note\n")
    land("plain/a.csv", body)
    sources = {
        name: SourceConfig(format="csv", path=name, columns=["id", "price"], options=options)
        for name, options in (("noted", {"comment": "#"}), ("plain", {}))
    }
    narrowed = config.model_copy(update={"ingest": IngestConfig(sources=sources)})
    run_pipeline(Run(narrowed, spark, tables, "noted-1"), ["ingest"])
    noted = tables.read("bronze.noted").select("id", "price", "_ingest_issue").collect()
    assert sorted(tuple(r) for r in noted) == [("1", "2.5", None), ("2", "3.0", None)]
    plain = tables.read("bronze.plain").select("_ingest_issue", "_ingest_rule").distinct().collect()
    assert [r["_ingest_issue"] for r in plain] == ["schema_drift"]
    assert plain[0]["_ingest_rule"].endswith("set options: {comment: '#'}")


def test_column_names_with_a_dot_or_a_star_land_and_clean_under_their_own_names(spark, config, tables, land):
    land("quotes/a.csv", "Date,Adj. Close*\n2003-09-19,29.79\n2003-09-18,29.34\n")
    quotes = SourceConfig(format="csv", path="quotes", columns=["Date", "Adj. Close*"])
    rules = DatasetCleaning.model_validate({"keys": ["Date"], "columns": {"Adj. Close*": {"type": "double"}}})
    narrowed = config.model_copy(
        update={
            "ingest": IngestConfig(sources={"quotes": quotes}),
            "clean": CleanConfig(datasets={"quotes": rules}),
        }
    )
    run_pipeline(Run(narrowed, spark, tables, "quotes-1"), ["ingest", "clean"])
    silver = tables.read("silver.quotes").select("Date", "`Adj. Close*`").collect()
    assert sorted(tuple(r) for r in silver) == [("2003-09-18", 29.34), ("2003-09-19", 29.79)]


def test_a_byte_order_mark_does_not_reach_the_data(land, run_stages, tables):
    land("people/a.csv", "\ufeff" + HEADER + "1,Anna,3.5,1990-01-01\n")
    run = run_stages()
    assert_balanced(run, "people", 1)
    assert tables.read("silver.people").select("id", "name").first().asDict() == {"id": 1, "name": "Anna"}


def test_latin1_and_invalid_utf8_bytes_are_decoded_value_by_value(land, run_stages, tables):
    land("people/utf8.csv", HEADER + "1,Chloé,3.5,1990-01-01\n")
    land("people/latin1.csv", (HEADER + "2,Zoë,4,1991-01-01\n").encode("latin-1"))
    land("people/mixed.csv", HEADER.encode() + b"3,Ren\xc3\xa9e \xff\xfe,5,1992-01-01\n")
    run = run_stages()
    assert_balanced(run, "people", 3)
    names = {r.id: r.name for r in tables.read("silver.people").collect()}
    # Valid UTF-8 stays UTF-8; other bytes map 1:1 to Latin-1 characters, so nothing is lost.
    assert names == {1: "Chloé", 2: "Zoë", 3: "RenÃ©e ÿþ"}


def test_only_uncompressed_valid_utf8_files_skip_the_check_per_value(spark, land, landing):
    files = {
        "utf8.csv": (HEADER + "1,Chloé,3.5,1990-01-01\n").encode(),
        "latin1.csv": (HEADER + "2,Zoë,4,1991-01-01\n").encode("latin-1"),
        "a.csv.gz": gzip.compress((HEADER + "3,Anna,5,1992-01-01\n").encode()),
    }
    for name, content in files.items():
        land(f"people/{name}", content)
    contents = read_contents(spark, list_landed_files(spark, hadoop_uri(landing / "people")))
    assert [Path(location).name for location in contents.utf8] == ["utf8.csv"]
    assert {Path(path).name: sha for path, sha in contents.sha256.items()} == {
        name: hashlib.sha256(content).hexdigest() for name, content in files.items()
    }


def test_local_files_and_the_executors_agree_on_each_files_hash_and_utf8(spark, land, landing):
    files = {
        "utf8.csv": "Chloé Łódź 😀\n".encode(),
        "latin1.csv": "Zoë\n".encode("latin-1"),
        "cut.csv": "Chloé".encode()[:-1],  # ends inside a two-byte character
        "empty.csv": b"",
        "big.csv": ("é" * 700_000 + "\n").encode(),  # chunks of 1 MiB split a character
    }
    for name, content in files.items():
        land(f"people/{name}", content)
    landed = list_landed_files(spark, hadoop_uri(landing / "people"))
    expected = {
        name: (hashlib.sha256(content).hexdigest(), name in ("utf8.csv", "empty.csv", "big.csv"))
        for name, content in files.items()
    }
    for facts in (local_facts(landed, utf8=True), executor_facts(spark, landed, utf8=True)):
        assert {Path(path).name: fact for path, fact in facts.items()} == expected


def test_an_empty_file_repeats_nothing_but_a_copy_of_a_file_with_bytes_is_a_replay():
    empty, copy = hashlib.sha256(b"").hexdigest(), hashlib.sha256(b"1,Anna\n").hexdigest()
    fresh = [
        LandedFile(f"file:/l/{name}", size, 0, f"/l/{name}")
        for name, size in [("a", 0), ("b", 0), ("c", 7), ("d", 7)]
    ]
    hashes = {"file:/l/a": empty, "file:/l/b": empty, "file:/l/c": copy, "file:/l/d": copy}
    assert find_replays(fresh, hashes, None, "people") == {"file:/l/d": "file:/l/c"}


def test_extra_and_missing_columns_quarantine_the_file_naming_both(land, run_stages, tables):
    land("people/extra.csv", "id,name,amount,born,vip\n1,Anna,3.5,1990-01-01,yes\n")
    land("people/missing.csv", "id,name,born\n2,Ben,1991-01-01\n")
    run = run_stages()
    assert_balanced(run, "people", 2)
    rules = sorted(r["rule"] for r in quarantined(tables, "people"))
    assert "missing [], extra ['vip']" in rules[0]
    assert "missing ['amount'], extra []" in rules[1]
    assert json.loads(quarantined(tables, "people")[0]["record"])["name"] in ("Anna", "Ben")


def test_empty_and_header_only_files_are_recorded_with_no_rows(land, run_stages, tables):
    land("people/empty.csv", "")
    land("people/header.csv", HEADER)
    land("people/data.csv", HEADER + "1,Anna,3.5,1990-01-01\n")
    run = run_stages()
    assert run.results["ingest"].metrics["people"]["files_new"] == 3
    assert_balanced(run, "people", 1)
    ledger = {Path(r.path).name: r.rows for r in tables.read("meta.ingested_files").collect()}
    assert ledger == {"empty.csv": 0, "header.csv": 0, "data.csv": 1}


def test_a_one_megabyte_field_arrives_whole(land, run_stages, tables):
    big = "x" * 1_048_576
    land("people/a.csv", HEADER + f"1,{big},3.5,1990-01-01\n2,Ben,4,1991-01-01\n")
    run = run_stages()
    assert_balanced(run, "people", 2)
    lengths = {
        r.id: r.n for r in tables.read("silver.people").select("id", F.length("name").alias("n")).collect()
    }
    assert lengths == {1: 1_048_576, 2: 3}


def test_numeric_overflow_nan_and_infinity_are_quarantined_with_their_rule(land, run_stages, tables):
    land(
        "people/a.csv",
        HEADER
        + "99999999999999999999,Big,1,1990-01-01\n2,Nan,NaN,1990-01-01\n3,Inf,Infinity,1990-01-01\n"
        + "4,Huge,1e400,1990-01-01\n5,Fine,2.5,1990-01-01\n",
    )
    run = run_stages()
    assert_balanced(run, "people", 5)
    found = {json.loads(r["record"])["name"]: (r["reason"], r["rule"]) for r in quarantined(tables, "people")}
    assert found == {
        "Big": ("type_coercion", "id: not a bigint"),
        "Nan": ("not_finite", "amount: NaN or infinite"),
        "Inf": ("not_finite", "amount: NaN or infinite"),
        "Huge": ("not_finite", "amount: NaN or infinite"),
    }


def test_invalid_and_far_future_dates_are_quarantined_and_other_formats_parse(land, run_stages, tables):
    land(
        "people/a.csv",
        HEADER + "1,Feb30,1,1990-02-30\n2,Future,1,2999-01-01\n3,European,1,24/12/1990\n4,Iso,1,1990-12-24\n",
    )
    run = run_stages()
    assert_balanced(run, "people", 4)
    found = {json.loads(r["record"])["name"]: r["reason"] for r in quarantined(tables, "people")}
    assert found == {"Feb30": "type_coercion", "Future": "out_of_range"}
    born = {r.name: str(r.born) for r in tables.read("silver.people").collect()}
    assert born == {"European": "1990-12-24", "Iso": "1990-12-24"}


def test_the_same_batch_twice_adds_nothing_and_a_resent_copy_is_a_skipped_replay(land, run_stages, tables):
    first = land("people/a.csv", HEADER + "1,Anna,3.5,1990-01-01\n2,Ben,4,1991-01-01\n")
    run_stages()
    again = run_stages()
    assert again.results["ingest"].rows_out == 0
    assert tables.read("bronze.people").count() == 2

    shutil.copy(first, first.with_name("a-resent.csv"))
    resent = run_stages()
    # The same bytes under a new name: recorded as a replay, read by no one.
    assert resent.results["ingest"].metrics["people"]["files_replayed"] == 1
    assert resent.results["ingest"].rows_out == 0
    assert tables.read("silver.people").count() == 2


def test_json_with_wrong_nested_types_broken_syntax_or_unknown_keys(land, run_stages, tables):
    land(
        "events/a.json",
        '{"id": "1", "tags": ["a", "b"], "value": "x"}\n'
        '{"id": "2", "tags": "a", "value": "y"}\n'
        '{"id": "3", "tags": ["a"\n'
        '{"id": "4", "tags": [], "value": "z", "surprise": 1}\n'
        "\n",
    )
    run = run_stages()
    assert_balanced(run, "events", 4)
    found = {r["record"]: (r["reason"], r["rule"]) for r in quarantined(tables, "events")}
    assert found['{"id": "2", "tags": "a", "value": "y"}'][0] == "malformed"
    assert found['{"id": "3", "tags": ["a"'][0] == "malformed"
    assert found['{"id": "4", "tags": [], "value": "z", "surprise": 1}'] == (
        "schema_drift",
        "json keys not in the declared ddl: surprise",
    )
    assert tables.read("silver.events").first().tags == ["a", "b"]


def test_json_keys_are_checked_whether_or_not_each_declared_key_is_there(spark, tmp_path):
    from deepspark.stages.ingest import json_to_bronze

    lines = {
        '{"id": "1", "tags": [], "value": "x"}': (None, None),
        '{"value": "x", "id": "2"}': (None, None),  # a declared key left out is a null
        "{}": (None, None),
        '{"id": "3", "id": "4"}': ("malformed", "json: a key appears more than once"),
        '{"id": "5", "id": "5", "tags": [], "value": "x"}': (
            "malformed",
            "json: a key appears more than once",
        ),
        '{"id": "6", "other": 1, "more": 2, "other": 3}': ("malformed", "json: a key appears more than once"),
        '{"id": "7", "other": 1, "more": 2}': (
            "schema_drift",
            "json keys not in the declared ddl: other, more",
        ),
        '{"other": 1}': ("schema_drift", "json keys not in the declared ddl: other"),
        '["id", "tags"]': ("malformed", "json: not a record of the declared ddl (syntax or value types)"),
    }
    path = tmp_path / "events.json"
    path.write_text("".join(line + "\n" for line in lines))
    found = json_to_bronze(spark, [str(path)], EVENTS).collect()
    raw = {r["_raw_record"] or r["id"] or "{}": (r["_ingest_issue"], r["_ingest_rule"]) for r in found}
    expected = {
        line if issue else (json.loads(line).get("id") or "{}"): (issue, rule)
        for line, (issue, rule) in lines.items()
    }
    assert raw == expected


def test_json_lines_keep_any_utf8_text_and_decode_other_bytes_line_by_line(land, run_stages, tables):
    # One file: a line of valid UTF-8 beyond Latin-1, and a line written in Latin-1.
    land(
        "events/a.json",
        '{"id": "1", "tags": [], "value": "Łódź 😀"}\n'.encode()
        + '{"id": "2", "tags": [], "value": "Zoë"}\n'.encode("latin-1"),
    )
    run = run_stages()
    assert_balanced(run, "events", 2)
    assert {r.id: r.value for r in tables.read("silver.events").collect()} == {1: "Łódź 😀", 2: "Zoë"}
    assert run.results["ingest"].metrics["events"]["redecoded"] == {"(record)": 1}


def test_text_sources_land_one_row_per_file_and_log_empty_ones(spark, config, tables, land):
    from deepspark.stages.ingest import ingest

    land("notes/a.txt", "first line\nsecond line\n")
    land("notes/b.txt", "")
    notes = SourceConfig(format="text", path="notes")
    run = Run(
        config.model_copy(update={"ingest": IngestConfig(sources={"notes": notes})}), spark, tables, "t-1"
    )
    ingest(run)
    rows = {Path(r._source_file).name: r.value for r in tables.read("bronze.notes").collect()}
    assert rows == {"a.txt": "first line\nsecond line\n"}
    ledger = {Path(r.path).name: r.rows for r in tables.read("meta.ingested_files").collect()}
    assert ledger == {"a.txt": 1, "b.txt": 0}  # an empty file has no row, but is accounted for


# -- the rest of the corpus (tests/stages/BAD_INPUT.md lists every class) ------------------

SMALL_GZIP = gzip.compress((HEADER + "1,Anna,3.5,1990-01-01\n").encode(), mtime=0)
BIG_GZIP = gzip.compress(
    (HEADER + "".join(f"{i},N{i},3.5,1990-01-01\n" for i in range(20_000))).encode(), mtime=0
)
QUARANTINED = {
    # class: (files landed, dataset, rows in, quarantine reasons, rows in silver)
    "unterminated quote": (
        {"people/a.csv": HEADER + '1,"Anna,3.5,1990-01-01\n2,Ben,4,1991-01-01\n'},
        "people",
        2,
        {"malformed": 1},
        1,
    ),
    "repeated header name": (
        {"people/a.csv": "id,id,name,amount,born\n1,1,Anna,3.5,1990-01-01\n"},
        "people",
        1,
        {"schema_drift": 1},
        0,
    ),
    "binary garbage named .csv": (
        {"people/a.csv": bytes(range(256)) * 3},
        "people",
        None,  # however many "lines" the bytes make: all of them quarantined
        {"schema_drift": None},
        0,
    ),
    "text in a numeric column": (
        {"people/a.csv": HEADER + "1,Anna,abc,1990-01-01\n2,Ben,4,1991-01-01\n"},
        "people",
        2,
        {"type_coercion": 1},
        1,
    ),
    "missing key": (
        {"people/a.csv": HEADER + ",Anna,3.5,1990-01-01\n2,Ben,4,1991-01-01\n"},
        "people",
        2,
        {"null": 1},
        1,
    ),
    "json lines that are not objects": (
        {"events/a.json": '[{"id": "1"}]\nnull\n42\n"text"\n{"id": "2", "tags": [], "value": "y"}\n'},
        "events",
        5,
        {"malformed": 4},
        1,
    ),
    "json key given twice": (
        {"events/a.json": '{"id": "1", "id": "2", "tags": [], "value": "x"}\n'},
        "events",
        1,
        {"malformed": 1},
        0,
    ),
}


@pytest.mark.parametrize("case", QUARANTINED)
def test_corpus_class_is_quarantined_with_its_reason(case, land, run_stages, tables):
    files, dataset, rows_in, reasons, rows_out = QUARANTINED[case]
    for path, content in files.items():
        land(path, content)
    run = run_stages()
    counts = run.results["clean"].metrics[dataset]
    assert_balanced(run, dataset, counts["rows_in"] if rows_in is None else rows_in)
    found = Counter(r["reason"] for r in quarantined(tables, dataset))
    expected = {r: n if n is not None else counts["rows_in"] for r, n in reasons.items()}
    assert found == expected and all(r["rule"] and r["record"] for r in quarantined(tables, dataset))
    assert counts["rows_out"] == rows_out == tables.read(f"silver.{dataset}").count()


def test_crlf_line_ends_control_characters_and_emoji_arrive_whole(land, run_stages, tables):
    land("people/a.csv", (HEADER + "1,An\x07na 😀,3.5,1990-01-01\n").replace("\n", "\r\n"))
    run = run_stages()
    assert_balanced(run, "people", 1)
    [row] = tables.read("silver.people").collect()
    assert (row.name, str(row.born)) == ("An\x07na 😀", "1990-01-01")


def test_a_gzip_compressed_csv_is_read_like_a_plain_one(land, run_stages, tables):
    land("people/a.csv.gz", SMALL_GZIP)
    run = run_stages()
    assert_balanced(run, "people", 1)
    assert tables.read("silver.people").select("name").first().name == "Anna"


@pytest.mark.parametrize(
    "damage, expected",
    [
        (SMALL_GZIP[:40], "ingest: cannot read file:{file}: EOFException: Unexpected end of input stream"),
        (BIG_GZIP[:3000], "[FAILED_READ_FILE.NO_HINT] Encountered error while reading file file://{file}."),
    ],
    ids=["header cut off", "body cut off"],
)
def test_a_truncated_gzip_file_stops_ingest_naming_it_and_lands_nothing(
    damage, expected, land, run_stages, tables
):
    path = land("people/a.csv.gz", damage)
    with pytest.raises(StageFailed) as failure:
        run_stages()
    assert expected.format(file=path) in describe(failure.value.__cause__)
    assert not tables.exists("bronze.people")


def test_an_undecodable_image_lands_in_bronze_marked_malformed(spark, config, tables, land):
    from deepspark.stages.ingest import ingest
    from PIL import Image

    good = land("images/good.png", b"")
    Image.new("L", (4, 3), color=7).save(good)
    land("images/bad.png", b"\x89PNG\r\n\x1a\n but then nothing an image decoder can use")
    images = SourceConfig(format="image", path="images")
    run = Run(
        config.model_copy(update={"ingest": IngestConfig(sources={"images": images})}), spark, tables, "i-1"
    )
    ingest(run)
    rows = {Path(r._source_file).name: r for r in tables.read("bronze.images").collect()}
    assert set(rows) == {"good.png", "bad.png"}
    assert (rows["good.png"].image.height, rows["good.png"]._ingest_issue) == (3, None)
    assert (rows["bad.png"]._ingest_issue, rows["bad.png"]._ingest_rule) == (
        "malformed",
        "image: not a decodable image",
    )
