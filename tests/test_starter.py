"""``deepspark init`` on exports it has never seen: the starter conf it writes names the dialect,
the types, the null tokens and a key that is unique, and runs ingest -> clean -> validate as
written, every row accounted for."""

from __future__ import annotations

import json

import pytest
import yaml
from deepspark.config import load_config
from deepspark.pipeline import run_pipeline
from deepspark.run import Run
from deepspark.starter import profile_frame, sniff_csv, write_starter
from deepspark.tables import Tables
from PIL import Image

PEOPLE = (
    "person_id;name;born;height;visits;note;fee\n"
    '1;Ada;1990-01-02;1.65;3.0;"likes\nnew lines";12,50\n'
    "2;Ben;1985-11-30;NA;4.0;plain;1.234,00\n"
    "3;Cy;2001-05-06;1.80;NA;NA;NA\n"
    "4;Di;1979-02-14;1.72;10.0;fine;7\n"
)
TEXTS = "# exported by a vendor's tool\ntext,label\ngood,1\nbad,0\ngood,1\n"  # a note above the header


def test_the_dialect_is_sniffed_from_a_sample():
    assert sniff_csv(PEOPLE.encode()) == {"sep": ";", "multiLine": "true"}
    assert sniff_csv(TEXTS.encode()) == {"comment": "#"}
    assert sniff_csv(TEXTS.partition("\n")[2].encode()) == {}


def test_dates_as_spreadsheets_export_them_are_dates(spark):
    frame = spark.createDataFrame(
        [("19-Sep-03", "Sep 19, 2003"), ("2-Jan-03", "Jan 2, 2003")], "a string, b string"
    )
    _, columns, _ = profile_frame(frame)
    assert [(c.type, c.formats) for c in columns] == [("date", ["d-MMM-yy"]), ("date", ["MMM d, yyyy"])]


@pytest.fixture
def project(tmp_path):
    landing = tmp_path / "shop" / "landing"
    for folder, name, text in (("people", "export.csv", PEOPLE), ("texts", "texts.csv", TEXTS)):
        (landing / folder).mkdir(parents=True)
        (landing / folder / name).write_text(text, encoding="utf-8")
    return landing, tmp_path / "shop" / "conf"


def test_init_writes_a_conf_that_runs_as_written(spark, project):
    landing, conf = project
    profiles = {p.name: p for p in write_starter(spark, landing, conf)}
    ingest = yaml.safe_load((conf / "base" / "ingest.yaml").read_text())
    clean = yaml.safe_load((conf / "base" / "clean.yaml").read_text())
    assert ingest["landing_dir"] == "../landing"
    people = ingest["sources"]["people"]
    assert people["options"] == {"sep": ";", "multiLine": "true"} and people["null_values"] == ["NA"]
    assert people["columns"] == ["person_id", "name", "born", "height", "visits", "note", "fee"]
    rules = clean["datasets"]["people"]
    assert rules["keys"] == ["person_id"]
    assert rules["columns"]["visits"] == {"type": "int"}  # 3.0, 4.0, 10.0
    assert rules["columns"]["height"] == {"type": "double"}
    assert rules["columns"]["fee"] == {"type": "double", "decimal": ","}  # 12,50 and 1.234,00
    assert rules["columns"]["born"] == {"type": "date", "formats": ["yyyy-MM-dd"]}
    assert ingest["sources"]["texts"]["options"] == {"comment": "#"}
    assert ingest["sources"]["texts"]["columns"] == ["text", "label"]
    assert profiles["texts"].key is None  # "good,1" twice: nothing unique
    assert clean["datasets"]["texts"]["surrogate_key"] == {"column": "texts_id", "columns": ["text", "label"]}

    config = load_config(conf, environ={})
    done = Run(config, spark, Tables(spark, config), "first")
    run_pipeline(done, ["ingest", "clean", "validate"])
    people = done.results["clean"].metrics["people"]
    assert (people["rows_in"], people["rows_out"], people["rows_quarantined"]) == (4, 4, 0)
    texts = done.results["clean"].metrics["texts"]
    assert (texts["rows_in"], texts["rows_out"], texts["rows_deduplicated"]) == (3, 2, 1)
    assert done.results["validate"].status == "ok"
    silver = done.tables.read("silver.people").collect()
    notes = {r.person_id: r.note for r in silver}
    assert notes[1] == "likes\nnew lines" and notes[3] is None
    assert {r.person_id: r.fee for r in silver} == {1: 12.5, 2: 1234.0, 3: None, 4: 7.0}


def test_init_keeps_an_existing_conf_unless_forced(spark, project):
    landing, conf = project
    (conf / "base").mkdir(parents=True)
    (conf / "base" / "clean.yaml").write_text("datasets: {}\n")
    with pytest.raises(FileExistsError, match="clean.yaml exists; pass --force"):
        write_starter(spark, landing, conf)
    write_starter(spark, landing, conf, force=True)
    assert "people" in yaml.safe_load((conf / "base" / "clean.yaml").read_text())["datasets"]


def test_init_on_image_files_lands_them_and_trains_by_class_folder(spark, tmp_path):
    """PNGs in class folders, of several sizes, grey and colour, one broken: a binaryFile source
    and a train.yaml that loads; images not in class folders land with no train dataset."""
    landing, conf = tmp_path / "landing", tmp_path / "conf"
    sizes = [(40, 30), (40, 30), (40, 30), (200, 150)]  # (width, height): most files' wins
    for label, mode in (("cat", "L"), ("dog", "RGB")):
        (landing / "pets" / label).mkdir(parents=True)
        for i, size in enumerate(sizes):
            Image.new(mode, size).save(landing / "pets" / label / f"{i}.png")
    (landing / "pets" / "cat" / "broken.png").write_bytes(b"\x89PNG not really")
    (landing / "scans").mkdir()
    Image.new("L", (300, 100)).save(landing / "scans" / "page.png")

    profiles = {p.name: p for p in write_starter(spark, landing, conf)}
    assert profiles["pets"].summary() == (
        "pets: 9 image files, read at 30x40x3 (1 sampled file(s) not images: training quarantines them); "
        "2 class folders (cat, dog): train.yaml trains pets_cnn"
    )
    assert profiles["scans"].summary().startswith("scans: 1 image files, read at 21x64x1; no class folders")
    ingest = yaml.safe_load((conf / "base" / "ingest.yaml").read_text())
    assert ingest["sources"] == {
        "pets": {"format": "binaryFile", "path": "pets"},
        "scans": {"format": "binaryFile", "path": "scans"},
    }
    assert not (conf / "base" / "clean.yaml").exists()  # no table to clean
    train = load_config(conf, environ={}).train
    assert list(train.datasets) == ["pets"] and train.datasets["pets"].label == "_folder"
    assert train.datasets["pets"].images.size == (30, 40) and train.datasets["pets"].images.channels == 3
    assert train.models["pets_cnn"].cnn.conv == [16, 32, 64]  # 30 pixels fit three layers


def test_init_on_text_files_in_class_folders_trains_an_rnn_and_keeps_a_txt_table_a_table(spark, tmp_path):
    landing, conf = tmp_path / "landing", tmp_path / "conf"
    for label, word in (("pos", "great"), ("neg", "awful")):
        (landing / "reviews" / label).mkdir(parents=True)
        for i in range(10):
            (landing / "reviews" / label / f"{i}.txt").write_text(" ".join([word, "film"] * (5 + i)) + "\n")
    (landing / "prose").mkdir()
    (landing / "prose" / "note.txt").write_text("A note with no delimiter\nover two lines\n")
    (landing / "export").mkdir()
    (landing / "export" / "rows.txt").write_text("id\tscore\n1\t2.5\n2\t3.5\n")  # a table as .txt

    profiles = {p.name: p for p in write_starter(spark, landing, conf)}
    assert profiles["reviews"].summary() == (
        "reviews: 20 text files, 26 words kept per text; 2 class folders (neg, pos): "
        "train.yaml trains reviews_rnn"
    )
    assert (
        profiles["prose"]
        .summary()
        .endswith("; no class folders, so no train dataset (label them: train.datasets.<name>.labels)")
    )
    sources = yaml.safe_load((conf / "base" / "ingest.yaml").read_text())["sources"]
    assert (
        sources["reviews"] == {"format": "text", "path": "reviews"} and sources["prose"]["format"] == "text"
    )
    assert sources["export"]["format"] == "csv" and sources["export"]["options"] == {"sep": "\t"}
    config = load_config(conf, environ={})
    assert list(config.clean.datasets) == ["export"]
    reviews = config.train.datasets["reviews"]
    assert (reviews.kind, reviews.input, reviews.key, reviews.label) == (
        "text",
        "bronze.reviews",
        "_source_file",
        "_folder",
    )
    assert reviews.text.column == "value" and reviews.text.max_len == 26
    assert config.train.models["reviews_rnn"].kind == "rnn"


def test_init_on_json_leaves_broken_lines_out_of_the_contract_and_finds_the_key(spark, tmp_path):
    landing, conf = tmp_path / "landing", tmp_path / "conf"
    (landing / "orders").mkdir(parents=True)
    records = [
        {"order_id": f"o{i}", "customer": {"id": i % 40}, "items": ["tea"] * (1 + i % 3), "unit price": i / 4}
        for i in range(300)
    ]
    lines = [json.dumps(r) for r in records] + ['{"order_id": "cut off", ']
    (landing / "orders" / "orders.jsonl").write_text("\n".join(lines) + "\n")

    (profile,) = write_starter(spark, landing, conf)
    assert (
        profile.summary()
        == "orders: json, 300 rows, key order_id; 1 malformed line(s), which ingest quarantines"
    )
    source = yaml.safe_load((conf / "base" / "ingest.yaml").read_text())["sources"]["orders"]
    assert source["ddl"] == (
        "customer struct<id:bigint>, items array<string>, order_id string, `unit price` double"
    )
    config = load_config(conf, environ={})
    done = Run(config, spark, Tables(spark, config), "first")
    run_pipeline(done, ["ingest", "clean"])
    orders = done.results["clean"].metrics["orders"]
    assert (orders["rows_in"], orders["rows_out"], orders["rows_quarantined"]) == (301, 300, 1)
