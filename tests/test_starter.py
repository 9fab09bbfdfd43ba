"""``deepspark init`` on exports it has never seen: the starter conf it writes names the dialect,
the types, the null tokens and a key that is unique, and runs ingest -> clean -> validate as
written, every row accounted for."""

from __future__ import annotations

import pytest
import yaml
from deepspark.config import load_config
from deepspark.pipeline import run_pipeline
from deepspark.run import Run
from deepspark.starter import sniff_csv, write_starter
from deepspark.tables import Tables

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
