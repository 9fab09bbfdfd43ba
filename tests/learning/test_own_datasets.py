"""A user's own images and texts into gold by configuration alone, then trained: pixel columns of
a CSV export, a folder of PNG files in class folders (grey and RGB, two sizes, one broken file),
landed by ingest as binaryFile and as Spark's image source, and two text datasets; four models of
four kinds (cnn, mlp, rnn, a custom builder) from those four datasets in one train run."""

from __future__ import annotations

import io
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from deepspark.config import ConfigError, IngestConfig, TrainConfig, load_config
from deepspark.pipeline import run_pipeline
from deepspark.quarantine import QUARANTINE
from deepspark.recipes import ImageConverter, TrainingDataError, natural_order, new_examples
from deepspark.run import Run
from deepspark.stages.predict import latest_model, predict, predict_new, saved_inputs, score
from deepspark.stages.report.stage import RunRecord, render_markdown
from deepspark.stages.train.data import pin_table, prepare_dataset, require_test_rows
from deepspark.stages.train.stage import train
from deepspark.tables import Tables
from PIL import Image
from pyspark.sql import functions as F
from sklearn.datasets import load_digits

from tests.conftest import TEST_HMAC_KEY
from tests.small_conf import REPO

TINY = {"epochs": 1, "batch_size": 16, "warmup_epochs": 0}


def with_train(config, **train):
    """``config`` with this train section (validated as YAML would be) on 1 rank."""
    section = TrainConfig.model_validate({"num_proc": 1, "files_per_split": 2, **train})
    return config.model_copy(update={"train": section})


def pixel_csv(spark, tables, rows: int = 400):
    """scikit-learn's 8x8 digits as a CSV export lands them: text columns label, pixel0..pixel63,
    no id. Row 3 has a pixel that is not a number."""
    digits = load_digits()
    frame = pd.DataFrame(digits.data[:rows].astype(int).astype(str), columns=[f"pixel{i}" for i in range(64)])
    frame.insert(0, "label", digits.target[:rows].astype(str))
    frame.loc[3, "pixel10"] = "n/a"
    tables.write(spark.createDataFrame(frame), "bronze.digit_export", mode="overwrite")
    return digits


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def land_pngs(folder, count: int = 24) -> None:
    """Class folders cat/ and dog/: bright cats, dark dogs; grey 8x8 and RGB 12x10 files, and a
    file that is not an image."""
    rng = np.random.default_rng(3)
    for i in range(count):
        label = "cat" if i % 2 else "dog"
        level = 200 if label == "cat" else 40
        shape = (8, 8) if i % 3 else (12, 10, 3)
        pixels = np.clip(rng.normal(level, 10, shape), 0, 255).astype(np.uint8)
        (folder / label).mkdir(parents=True, exist_ok=True)
        (folder / label / f"{i:03}.png").write_bytes(png(pixels))
    (folder / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")


def ingest_pngs(spark, config, tables, count: int):
    """:func:`land_pngs` landed as bronze.pets (binaryFile) by the ingest stage; the config that
    declares the source."""
    land_pngs(config.landing_root / "pets", count)
    sources = {"pets": {"format": "binaryFile", "path": "pets"}}
    landed = config.model_copy(update={"ingest": IngestConfig.model_validate({"sources": sources})})
    run_pipeline(Run(landed, spark, tables, "land-pets"), ["ingest"])
    return landed


def test_pixel_columns_come_in_the_natural_order_of_their_names():
    assert natural_order(["pixel10", "pixel2", "pixel1", "label"]) == ["label", "pixel1", "pixel2", "pixel10"]


def test_images_are_converted_resized_and_padded_to_the_configured_shape():
    from deepspark.config import ImageInput

    grey = np.arange(16, dtype=np.uint8).reshape(4, 4, 1)
    rgb = np.full((2, 4, 3), (255, 0, 0), dtype=np.uint8)
    padded = ImageConverter("encoded", ImageInput(column="x", channels=3, size=(4, 4), fit="pad"))
    out = padded.fit(rgb)
    assert out.shape == (4, 4, 3)
    assert (out[0] == 0).all() and (out[1:3] == (255, 0, 0)).all()  # centred on black
    to_grey = ImageConverter("levels", ImageInput(column="x", channels=1))
    assert to_grey.fit(grey) is grey  # already the shape: untouched
    assert to_grey.fit(np.concatenate([grey] * 3, axis=2)).tolist() == grey.tolist()
    stretched = ImageConverter("encoded", ImageInput(column="x", size=(8, 8))).fit(grey)
    assert stretched.shape == (8, 8, 1)
    bad = ImageConverter("encoded", ImageInput(column="x"))(pd.Series([b"GIF89a..", b""]))
    assert bad["pixels"].isna().all() and bad["problem"].str.contains("image").all()


def test_levels_of_another_scale_are_rescaled_to_0_255_and_a_level_above_it_is_a_problem():
    from deepspark.config import ImageInput

    def problems_and_pixels(max_level: float, rows: list[list[float]]) -> list:
        out = ImageConverter("levels", ImageInput(columns="p*", max_level=max_level))(pd.Series(rows))
        found = zip(out["problem"], out["pixels"], strict=True)
        return [(problem, pixels and list(pixels)) for problem, pixels in found]

    assert problems_and_pixels(16, [[0, 4, 8, 16]]) == [(None, [0, 64, 128, 255])]  # sklearn's digits
    assert problems_and_pixels(1, [[0, 0.5, 0.25, 1]]) == [(None, [0, 128, 64, 255])]  # 0..1 floats
    ((problem, pixels),) = problems_and_pixels(16, [[0, 4, 8, 17]])
    assert pixels is None and problem == (
        "pixel values 0..17; expected levels 0..16 (images.max_level: the level of a white pixel)"
    )


def test_a_pixel_column_csv_reaches_gold_row_for_row_with_the_bad_row_quarantined(spark, config, tables):
    digits = pixel_csv(spark, tables)
    dataset = {"kind": "images", "input": "bronze.digit_export", "images": {"columns": "pixel*"}}
    settings = with_train(config, datasets={"csv_digits": dataset})
    prepared = prepare_dataset(tables, settings, "csv_digits", "run-1")
    assert prepared.rows == 399 and prepared.quarantined == 1
    assert prepared.classes == [str(d) for d in range(10)]  # string labels, named
    gold = tables.read("gold.csv_digits").toPandas()
    assert set(gold[["height", "width", "channels"]].itertuples(index=False, name=None)) == {(8, 8, 1)}
    assert gold["row_id"].is_unique  # the surrogate key
    expected = {bytes(row.astype(np.uint8)) for row in np.delete(digits.data[:400], 3, axis=0)}
    assert set(gold["pixels"].map(bytes)) == expected
    ((reason, rule),) = (
        tables.read(QUARANTINE).filter("dataset = 'csv_digits'").select("reason", "rule").collect()
    )
    assert reason == "unreadable_image" and "missing or not numbers" in rule and "csv_digits" in rule


def test_levels_that_never_pass_1_without_a_max_level_name_the_key_and_max_level_1_reads_them(
    spark, config, tables, tmp_path
):
    digits = load_digits()
    fractions = pd.DataFrame(digits.data[:60] / 16, columns=[f"px{i}" for i in range(64)])
    fractions.insert(0, "label", digits.target[:60])
    tables.write(spark.createDataFrame(fractions), "bronze.fractions", mode="overwrite")
    conf = tmp_path / "conf" / "base"
    conf.mkdir(parents=True)
    dataset = "datasets:\n  fractions: {kind: images, input: bronze.fractions, images: {columns: 'px*'}}\n"
    (conf / "train.yaml").write_text(dataset)
    settings = load_config(tmp_path / "conf", environ={"DEEPSPARK_SECRET_PII_HMAC_KEY": TEST_HMAC_KEY})
    with pytest.raises(ConfigError) as raised:  # from the YAML, so the line can name its file
        prepare_dataset(tables, settings.model_copy(update={"run": config.run}), "fractions")
    assert str(raised.value) == (
        f"{conf / 'train.yaml'}: key 'train.datasets.fractions.images.max_level' is unset, so levels "
        "run 0..255, but no pixel value is above 1: every image would be black; expected "
        "max_level: 1 if the levels are fractions of white (or 255, set, if they really are that dark)"
    )
    scaled = {"kind": "images", "input": "bronze.fractions", "images": {"columns": "px*", "max_level": 1}}
    prepared = prepare_dataset(tables, with_train(config, datasets={"fractions": scaled}), "fractions")
    assert prepared.rows == 60 and prepared.quarantined == 0
    gold = tables.read("gold.fractions").orderBy("row_id").toPandas()
    assert max(max(bytes(p)) for p in gold["pixels"]) == 255  # white is white again


def test_a_folder_of_pngs_lands_and_reaches_gold_at_one_shape_labelled_by_folder(spark, config, tables):
    land_pngs(config.landing_root / "pets")
    sources = {
        "pets": {"format": "binaryFile", "path": "pets"},
        "pet_images": {"format": "image", "path": "pets"},
    }
    landed = config.model_copy(update={"ingest": IngestConfig.model_validate({"sources": sources})})
    run_pipeline(Run(landed, spark, tables, "land-pets"), ["ingest"])
    images = {"channels": 3, "size": [8, 8], "fit": "pad"}
    datasets = {
        "pets": {
            "kind": "images",
            "input": "bronze.pets",
            "key": "path",
            "label": "_folder",
            "images": {"column": "content", **images},
        },
        "pet_structs": {
            "kind": "images",
            "input": "bronze.pet_images",
            "label": "_folder",
            "images": {"column": "image", **images},
        },
    }
    settings = with_train(landed, datasets=datasets)
    for name in datasets:
        prepared = prepare_dataset(tables, settings, name, "run-1")
        assert (prepared.rows, prepared.quarantined, prepared.classes) == (24, 1, ["cat", "dog"])
        gold = tables.read(f"gold.{name}").toPandas()
        assert set(gold[["height", "width", "channels"]].itertuples(index=False, name=None)) == {(8, 8, 3)}
        pixels = np.stack([np.frombuffer(p, np.uint8) for p in gold["pixels"]]).reshape(-1, 8, 8, 3)
        centre = pixels[:, 3:5, 3:5].mean(axis=(1, 2, 3))
        assert ((centre > 120) == (gold["label"] == 0)).all()  # cats (class 0) are the bright ones
    rules = tables.read(QUARANTINE).filter("stage = 'train'").select("dataset", "reason", "record").collect()
    assert sorted((r.dataset, r.reason) for r in rules) == [
        ("pet_structs", "malformed"),
        ("pets", "unreadable_image"),
    ]
    assert all("broken.png" in r.record for r in rules)


def test_images_take_their_labels_from_a_labels_table_by_file_name(spark, config, tables):
    landed = ingest_pngs(spark, config, tables, count=24)
    files = [f"{i:03}.png" for i in range(24) if i != 5] + ["broken.png"]  # 005.png has no label
    kinds = {f: "feline" if f == "broken.png" or int(f[:3]) % 2 else "canine" for f in files}
    labels = spark.createDataFrame(list(kinds.items()), "filename string, species string")
    tables.write(labels, "silver.pet_labels", mode="overwrite")
    dataset = {
        "kind": "images",
        "input": "bronze.pets",
        "key": "path",
        "labels": {"table": "silver.pet_labels", "on": {"_file": "filename"}},
        "label": "species",
        "images": {"column": "content", "size": [8, 8]},
    }
    settings = with_train(landed, datasets={"pets": dataset})
    prepared = prepare_dataset(tables, settings, "pets", "run-1")
    assert (prepared.rows, prepared.quarantined, prepared.classes) == (23, 1, ["canine", "feline"])
    assert prepared.source == {"bronze.pets": 0, "silver.pet_labels": 0}  # in the model's lineage
    gold = tables.read("gold.pets").toPandas()
    assert not gold["path"].str.endswith("/005.png").any()  # no label: left out
    bright = np.stack([np.frombuffer(p, np.uint8) for p in gold["pixels"]]).mean(axis=1) > 120
    assert (bright == (gold["label"] == 1)).all()  # felines are the cats, the bright ones

    twice = labels.unionByName(spark.createDataFrame([("003.png", "canine")], labels.schema))
    tables.write(twice, "silver.pet_labels", mode="overwrite")
    with pytest.raises(TrainingDataError) as raised:
        prepare_dataset(tables, settings, "pets")
    assert str(raised.value) == (
        "train.datasets.pets.labels.table = 'silver.pet_labels': more than one row for 003.png; "
        "expected one label row per example (by ['filename'])"
    )


def test_images_of_several_sizes_without_a_size_name_the_key(spark, config, tables):
    landed = ingest_pngs(spark, config, tables, count=6)
    dataset = {"kind": "images", "input": "bronze.pets", "label": "_folder", "images": {"column": "content"}}
    with pytest.raises(
        ConfigError,
        match=r"key 'train.datasets.pets.images.size' = null: .*several sizes.*expected \[height, width\]",
    ):
        prepare_dataset(tables, with_train(landed, datasets={"pets": dataset}), "pets")


def test_a_model_reading_the_wrong_kind_of_dataset_names_the_key(tmp_path):
    conf = tmp_path / "conf" / "base"
    conf.mkdir(parents=True)
    (conf / "train.yaml").write_text(
        "datasets:\n  notes: {kind: text, input: silver.notes}\nmodels:\n  net: {kind: cnn, dataset: notes}\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path / "conf", environ={"DEEPSPARK_SECRET_PII_HMAC_KEY": TEST_HMAC_KEY})
    assert str(raised.value) == (
        f"{conf / 'train.yaml'}: key 'train.models.net.dataset' = 'notes': a cnn model reads images, "
        "notes is text; expected one of: (none defined)"
    )


def tiny_builder(inputs, units: int = 8):
    """A user's own network (kind custom): what train.models.<name>.builder names."""
    from deepspark.tensors import tf_keras

    keras = tf_keras()
    return keras.Sequential(
        [
            keras.layers.InputLayer(input_shape=inputs.shape, dtype=inputs.dtype),
            keras.layers.Embedding(inputs.vocabulary, 8, mask_zero=True),
            keras.layers.GlobalMaxPooling1D(),
            keras.layers.Dense(units, activation="relu"),
            keras.layers.Dense(inputs.classes, activation="softmax"),
        ]
    )


@pytest.mark.slow
def test_two_image_and_two_text_datasets_train_four_models_in_one_run(spark, config, tables, tmp_path):
    pixel_csv(spark, tables, rows=600)
    reviews = spark.createDataFrame(
        [
            (
                f"great tasty fresh {i}"
                if i % 3 == 0
                else f"stale awful {i}"
                if i % 3 == 1
                else f"okay fine {i}",
                i % 3,
            )
            for i in range(300)
        ],
        "text string, mood int",
    )
    tables.write(reviews, "silver.notes", mode="overwrite")
    landed = ingest_pngs(spark, config, tables, count=60)
    moods = "CASE mood WHEN 0 THEN 'happy' WHEN 1 THEN 'sad' ELSE 'meh' END"
    datasets = {
        "csv_digits": {"kind": "images", "input": "bronze.digit_export", "images": {"columns": "pixel*"}},
        "pets": {
            "kind": "images",
            "input": "bronze.pets",
            "key": "path",
            "label": "_folder",
            "images": {"column": "content", "size": [8, 8]},
        },
        "moods": {"kind": "text", "input": "silver.notes", "label": moods, "text": {"max_len": 4}},
        "moods_binary": {
            "kind": "text",
            "input": "silver.notes",
            "label": "mood = 0",
            "text": {"max_len": 4},
        },
    }
    models = {
        "digit_cnn": {"kind": "cnn", "dataset": "csv_digits", "cnn": {"conv": [8], "dense": [16]}, **TINY},
        "pet_mlp": {"kind": "mlp", "dataset": "pets", "mlp": {"dense": [8]}, **TINY},
        "mood_rnn": {"kind": "rnn", "dataset": "moods", "rnn": {"units": 8}, **TINY, "epochs": 3},
        "mood_custom": {
            "kind": "custom",
            "dataset": "moods_binary",
            "builder": f"{__name__}:tiny_builder",
            "builder_args": {"units": 4},
            **TINY,
        },
    }
    # no input or key: the gold table and key of the model's dataset
    predictions = {"moods": {"model": "mood_rnn", "output": "gold.mood_predictions"}}
    settings = with_train(landed, datasets=datasets, models=models, predict=predictions)
    run = Run(settings, spark, Tables(spark, settings), "four-models")
    result = train(run)
    assert set(result.metrics) == set(models)
    assert {(m["attempts"], m["ranks"]) for m in result.metrics.values()} == {(1, 1)}
    reports = [
        pickle.loads(p.read_bytes()) for p in settings.models_root.glob("training/*/*/logs/rank-0.report")
    ]
    assert len(reports) == 4 and len({r.pid for r in reports}) == 1  # one process trained all four
    assert {t: v for t, v in result.tables.items() if t.startswith("gold.")} == {
        f"gold.{d}": 0 for d in datasets
    }
    assert result.rows_quarantined == 2  # the CSV's bad pixel and the broken PNG
    per_class = {name: [c["name"] for c in m["test"]["per_class"]] for name, m in result.metrics.items()}
    assert per_class["mood_rnn"] == ["happy", "meh", "sad"] and per_class["pet_mlp"] == ["cat", "dog"]
    assert per_class["mood_custom"] == ["false", "true"]
    assert result.metrics["mood_rnn"]["test"]["accuracy"] > 0.9  # the words give the mood away
    scored = predict(run).metrics["moods"]
    assert scored["input"] == "gold.moods" and scored["rows"] == tables.read("gold.moods").count()
    assert tables.read("gold.mood_predictions").columns[:3] == ["row_id", "label", "split"]
    assert scored["measured_on"] == "test split" and scored["accuracy"] == pytest.approx(
        result.metrics["mood_rnn"]["test"]["accuracy"], abs=1e-9
    )
    registered = tables.read("ml.models").select("name", "kind", "table_name").collect()
    assert {(r.name, r.kind, r.table_name) for r in registered} == {
        (name, spec["kind"], f"gold.{spec['dataset']}") for name, spec in models.items()
    }

    # New rows, by each model's saved recipe. The same rows score as the stage scored their gold
    # rows, under the same keys; new texts by name from a CSV with no label.
    again = predict_new(run, "mood_rnn:1", "silver.notes", "gold.moods_again")
    assert (again.rows, again.unscored, again.measured_on) == (300, {}, 300)
    stage = {r.row_id: r.prediction for r in tables.read("gold.mood_predictions").collect()}
    assert {r.row_id: r.prediction for r in tables.read("gold.moods_again").collect()} == stage
    assert again.agreement == pytest.approx(
        tables.read("gold.mood_predictions")
        .agg(F.avg((F.col("label") == F.col("prediction")).cast("int")))
        .first()[0]
    )
    notes = tmp_path / "new" / "notes.csv"
    notes.parent.mkdir()
    notes.write_text("text\ngreat tasty fresh thing\nstale awful stuff\n")
    fresh = predict_new(run, "mood_rnn", str(notes))
    assert (fresh.output, fresh.rows, fresh.agreement) == ("gold.mood_rnn_scored", 2, None)
    said = {r.text: r.predicted_class for r in tables.read("gold.mood_rnn_scored").collect()}
    assert said == {"great tasty fresh thing": "happy", "stale awful stuff": "sad"}
    for n, text in enumerate(said):  # the same texts as text files, one each
        (notes.parent / "files" / f"{n}.txt").parent.mkdir(exist_ok=True)
        (notes.parent / "files" / f"{n}.txt").write_text(text)
    files = predict_new(run, "mood_rnn", str(notes.parent / "files"), "gold.moods_from_files")
    from_files = tables.read("gold.moods_from_files").collect()
    assert files.rows == 2 and {r.text: r.predicted_class for r in from_files} == said

    # Image files straight from a folder: any size, fitted to the model's input; the broken file
    # is a row with its problem, and the class folders give the labels it is measured against.
    pets = predict_new(run, "pet_mlp", str(landed.landing_root / "pets"), "gold.new_pets")
    ((problem, count),) = pets.unscored.items()
    assert (pets.rows, count, pets.measured_on) == (60, 1, 60) and "not a decodable image" in problem
    entry = latest_model(tables, "pet_mlp")
    model = spark.sparkContext.broadcast(Path(entry["uri"]).read_bytes())
    inputs = saved_inputs(Path(entry["uri"]).parent)
    by_stage = {
        r.path: r.prediction for r in score(tables.read("gold.pets"), model, inputs, "path").collect()
    }
    new_pets = tables.read("gold.new_pets").filter("problem IS NULL").collect()
    assert {r.path: r.prediction for r in new_pets} == by_stage
    assert {r.predicted_class for r in new_pets} <= {"cat", "dog"}
    # Files outside class folders take their folder's name, which is no class: left out of the
    # accuracy, and said so.
    incoming = tmp_path / "incoming"
    (incoming / "cat").mkdir(parents=True)
    cats = sorted((landed.landing_root / "pets" / "cat").glob("*.png"))[:4]
    for n, path in enumerate(cats):
        shutil.copy(path, incoming / "cat" / path.name if n % 2 else incoming / path.name)
    mixed = predict_new(run, "pet_mlp", str(incoming))
    assert (mixed.rows, mixed.measured_on, mixed.foreign) == (4, 2, {"incoming": 2})
    assert mixed.lines()[1] == (
        "  no accuracy on 2 labelled row(s): their labels ('incoming') are not classes of the model "
        "(cat, dog)"
    )


def test_the_shipped_conf_names_its_datasets():
    config = load_config(REPO / "conf", environ={"DEEPSPARK_SECRET_PII_HMAC_KEY": TEST_HMAC_KEY})
    assert {name: spec.table for name, spec in config.train.models.items()} == {
        "digits_cnn": "gold.digits",
        "review_rnn": "gold.review_sequences",
    }


def test_numeric_sequences_are_windows_of_each_series_labelled_by_their_last_row(spark, config, tables):
    rows = [("a", str(m), str(float(m)), str(10.0 * m), "up" if m >= 3 else "flat") for m in range(6)]
    rows += [("b", "10", "1.0", "x", "flat"), ("b", "2", "2.0", "2", "flat"), ("b", "9", "3.0", "3", "flat")]
    readings = spark.createDataFrame(rows, "machine string, minute string, t string, v string, state string")
    tables.write(readings, "bronze.readings", mode="overwrite")
    window = {"series": ["machine"], "order": "CAST(minute AS INT)", "features": ["t", "v"], "length": 3}
    dataset = {"kind": "sequences", "input": "bronze.readings", "label": "state", "sequences": window}
    prepared = prepare_dataset(tables, with_train(config, datasets={"readings": dataset}), "readings", "r1")
    assert prepared.quarantined == 1 and prepared.classes == ["flat", "up"]
    (rule,) = [r.rule for r in tables.read(QUARANTINE).filter("dataset = 'readings'").collect()]
    assert rule.endswith("missing or not a number: v")  # b's minute 10
    gold = {r.window_id: r for r in tables.read("gold.readings").collect()}
    assert sorted(gold) == ["a|2", "a|3", "a|4", "a|5"]  # b has two good rows: no whole window
    mean_t, std_t = np.mean([0, 1, 2, 3, 4, 5, 2, 3]), np.std([0, 1, 2, 3, 4, 5, 2, 3])
    mean_v, std_v = np.mean([0, 10, 20, 30, 40, 50, 2, 3]), np.std([0, 10, 20, 30, 40, 50, 2, 3])
    expected = [((m - mean_t) / std_t, (10 * m - mean_v) / std_v) for m in (1, 2, 3)]
    np.testing.assert_allclose(gold["a|3"].values, np.ravel(expected), rtol=1e-5)  # minutes 1..3, in order
    scaling = prepared.recipe()["scaling"]  # saved with each model: new rows are scaled alike
    assert scaling["t"] == pytest.approx({"mean": mean_t, "std": std_t})
    assert scaling["v"] == pytest.approx({"mean": mean_v, "std": std_v})
    assert [gold[k].label for k in ("a|2", "a|3")] == [0, 1]  # the last row's label
    assert len({gold[k].split for k in gold}) == 1  # one series, one split

    # The recipe saved with a model makes new rows the same windows, by the saved scaling: every
    # whole one (the last too: a forecast), and a broken row as an example with its problem.
    examples, key = new_examples(tables.read("bronze.readings"), prepared.recipe(), (3, 2), "readings")
    new = {r.window_id: r for r in examples.collect()}
    assert key == "window_id" and sorted(new) == ["a|2", "a|3", "a|4", "a|5", "b|10"]
    for window in gold:
        np.testing.assert_allclose(new[window].values, gold[window].values, rtol=1e-6)
    assert new["b|10"].values is None and new["b|10"].problem.endswith("missing or not a number: v")
    assert [new[k].label for k in ("a|2", "a|3")] == ["flat", "up"]  # the label as the rows say it


def waves(spark, tables, series: int = 20, steps: int = 100) -> None:
    """bronze.waves as a CSV lands it (text): sine waves of different phases, one per machine,
    a reading a minute, with a little noise."""
    rng = np.random.default_rng(5)
    rows = [
        (f"m{s:02}", str(t), f"{50 + 8 * np.sin(t / 4 + s) + rng.normal(0, 0.2):.3f}")
        for s in range(series)
        for t in range(steps)
    ]
    frame = spark.createDataFrame(rows, "machine string, minute string, temperature string")
    tables.write(frame, "bronze.waves", mode="overwrite")


FORECAST = {
    "kind": "sequences",
    "task": "regression",
    "input": "bronze.waves",
    # the next minute's reading: null on each machine's last minute, which ends no window
    "label": "lead(TRY_CAST(temperature AS DOUBLE)) OVER (PARTITION BY machine ORDER BY CAST(minute AS INT))",
    "sequences": {
        "series": ["machine"],
        "order": "CAST(minute AS INT)",
        "features": ["temperature"],
        "length": 8,
    },
}


def test_a_forecast_label_is_the_next_reading_and_the_last_rows_stay_steps(spark, config, tables):
    waves(spark, tables, series=2, steps=12)
    prepared = prepare_dataset(tables, with_train(config, datasets={"waves": FORECAST}), "waves", "r1")
    gold = {r.window_id: r for r in tables.read("gold.waves").collect()}
    assert tables.read("gold.waves").schema["label"].dataType.simpleString() == "float"
    # minutes 7..10 end windows of 8; minute 11 has no next reading, so it ends none
    assert sorted(gold) == [f"m{s:02}|{t}" for s in (0, 1) for t in (10, 7, 8, 9)]
    readings = {
        (r.machine, int(r.minute)): float(r.temperature) for r in tables.read("bronze.waves").collect()
    }
    assert gold["m01|10"].label == pytest.approx(readings[("m01", 11)])  # the next minute's
    assert prepared.classes is None and prepared.rows == 8


def test_a_cast_that_meets_text_names_the_key_and_try_cast_keeps_every_row(spark, config, tables):
    waves(spark, tables, series=2, steps=12)
    broken = tables.read("bronze.waves").withColumn(
        "temperature", F.when(F.col("minute") == "5", "n/a").otherwise(F.col("temperature"))
    )
    tables.write(broken, "bronze.waves", mode="overwrite")
    strict = {**FORECAST, "label": FORECAST["label"].replace("TRY_CAST", "CAST")}
    with pytest.raises(TrainingDataError) as raised:
        prepare_dataset(tables, with_train(config, datasets={"waves": strict}), "waves")
    assert str(raised.value) == (
        "train.datasets.waves: The value 'n/a' of the type STRING cannot be cast to DOUBLE in the label "
        "or sequences.order expression; expected TRY_CAST(<column> AS <type>), which makes such a value "
        "null (a row with no label is left out)"
    )
    prepared = prepare_dataset(tables, with_train(config, datasets={"waves": FORECAST}), "waves", "r2")
    assert prepared.quarantined == 2  # minute 5 of each machine: its reading is not a number
    # 8 good rows end a window on minutes 8, 9, 10 of each (minute 11 has no next reading, and
    # a series' windows step over the quarantined row)
    assert prepared.rows == 6


def test_a_regression_label_that_is_text_says_to_cast_it(spark, config, tables):
    waves(spark, tables, series=2, steps=12)
    dataset = {**FORECAST, "label": "temperature"}  # a CSV's text
    with pytest.raises(TrainingDataError, match=r"train.datasets.waves.label = 'temperature' .*CAST\("):
        prepare_dataset(tables, with_train(config, datasets={"waves": dataset}), "waves")


def test_a_missing_input_or_a_split_with_no_series_names_the_key_before_any_rank(spark, config, tables):
    waves(spark, tables, series=3, steps=12)
    misspelt = {**FORECAST, "input": "bronze.wave"}
    with pytest.raises(ConfigError) as raised:
        prepare_dataset(tables, with_train(config, datasets={"waves": misspelt}), "waves")
    assert (
        "key 'train.datasets.waves.input' = 'bronze.wave': no such table; did you mean 'bronze.waves'?"
        in (str(raised.value))
    )
    # Each series goes whole to one split: 3 series and a test share of 1% leave the test empty.
    shares = {"train": 0.98, "validation": 0.01, "test": 0.01}
    settings = with_train(config, datasets={"waves": FORECAST}, splits=shares)
    prepared = prepare_dataset(tables, settings, "waves", "r1")
    pinned = pin_table(tables, "gold.waves", prepared.version)
    with pytest.raises(ConfigError) as raised:
        require_test_rows(tables, pinned, settings.train.datasets["waves"], settings)
    assert str(raised.value).endswith(
        "key 'train.splits' = {train: 0.98, validation: 0.01, test: 0.01}: gold.waves v0 has no test rows; "
        "by the hash of each, its 3 series went train 3, validation 0, test 0; expected larger validation "
        "and test shares (e.g. {train: 0.6, validation: 0.2, test: 0.2}) or more series"
    )


def test_a_regressor_watching_accuracy_names_the_key_and_its_metrics(tmp_path):
    conf = tmp_path / "conf" / "base"
    conf.mkdir(parents=True)
    net = {"kind": "rnn", "dataset": "waves", "early_stopping": {"monitor": "val_accuracy"}}
    (conf / "train.yaml").write_text(json.dumps({"datasets": {"waves": FORECAST}, "models": {"net": net}}))
    environ = {"DEEPSPARK_SECRET_PII_HMAC_KEY": TEST_HMAC_KEY}
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path / "conf", environ=environ)
    assert str(raised.value) == (
        f"{conf / 'train.yaml'}: key 'train.models.net.early_stopping.monitor' = 'val_accuracy': "
        "dataset 'waves' is a regression dataset; expected one of val_loss, val_mae, loss, mae"
    )
    net["early_stopping"] = {"patience": 2}  # left out: a regressor watches val_loss
    (conf / "train.yaml").write_text(json.dumps({"datasets": {"waves": FORECAST}, "models": {"net": net}}))
    assert (
        load_config(tmp_path / "conf", environ=environ).train.models["net"].early_stopping.monitor
        == "val_loss"
    )


@pytest.mark.slow
def test_an_rnn_regressor_forecasts_far_better_than_the_mean_and_scores_in_label_units(
    spark, config, tables, tmp_path
):
    waves(spark, tables, series=30)
    model = {
        "kind": "rnn",
        "dataset": "waves",
        "epochs": 12,
        "batch_size": 32,
        "learning_rate": 0.01,
        "warmup_epochs": 0,
        "rnn": {"cell": "gru", "units": 16},
        "early_stopping": {"patience": 4},
    }
    predictions = {"waves": {"model": "forecast", "output": "gold.wave_predictions"}}
    shares = {"train": 0.6, "validation": 0.2, "test": 0.2}  # by machine
    settings = with_train(
        config, datasets={"waves": FORECAST}, models={"forecast": model}, predict=predictions, splits=shares
    )
    run = Run(settings, spark, Tables(spark, settings), "forecast")
    result = train(run)
    outcome = result.metrics["forecast"]
    test = outcome["test"]
    assert test["rows"] > 100 and set(test) == {"rows", "rmse", "mae", "r2"}
    assert test["r2"] > 0.9 and test["rmse"] < outcome["mean_baseline_rmse"] / 3  # the mean's is about 5.7
    assert "val_mae" in outcome["history"][0] and "val_accuracy" not in outcome["history"][0]
    assert result.details[-1].startswith(f"forecast: test RMSE {test['rmse']:.4g} (R² ")
    predicted = predict(run)
    scored = predicted.metrics["waves"]
    assert tables.read("gold.wave_predictions").columns[:4] == ["window_id", "label", "split", "prediction"]
    assert scored["measured_on"] == "test split" and scored["rmse"] == pytest.approx(test["rmse"], rel=1e-4)
    (row,) = tables.read("ml.models").filter("name = 'forecast'").collect()
    assert json.loads(row.metrics)["test_rmse"] == pytest.approx(test["rmse"])
    inputs = json.loads((Path(row.uri).parent / "manifest.json").read_text())["inputs"]
    assert inputs["task"] == "regression" and inputs["label_mean"] == pytest.approx(50, abs=1)
    record = RunRecord("forecast", tmp_path, {"train": result, "predict": predicted}, "hash", "rs")
    report = render_markdown(record, tmp_path / "rows.png")
    assert f"Test RMSE **{test['rmse']:.4g}**" in report and "Test accuracy" not in report
    assert f"RMSE {scored['rmse']:.4g} (test split)" in report and "forecast_predictions.png" in report

    # The readings scored anew by the saved recipe: the stage's windows alike, and the forecast
    # past each machine's last reading (the one window with no label yet).
    fresh = predict_new(run, "forecast", "bronze.waves", "gold.wave_forecasts")
    assert (fresh.rows, fresh.measured_on, fresh.measure) == (30 * 93, 30 * 92, "rmse")
    stage = {r.window_id: r.prediction for r in tables.read("gold.wave_predictions").collect()}
    forecasts = {r.window_id: r.prediction for r in tables.read("gold.wave_forecasts").collect()}
    assert {window: forecasts[window] for window in stage} == pytest.approx(stage, rel=1e-5)
    assert set(forecasts) - set(stage) == {f"m{s:02}|99" for s in range(30)}
