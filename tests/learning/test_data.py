"""Training data: split, sequences, pinned snapshots and Petastorm shards."""

from __future__ import annotations

import numpy as np
import pytest
from deepspark.config import DatasetConfig
from deepspark.recipes import PAD, UNKNOWN, TrainingDataError, assign_split
from deepspark.stages.train.data import (
    index_labels,
    labelled_words,
    learn_vocabulary,
    pin_table,
    prepare_dataset,
    read_split,
    stream_batches,
    to_sequences,
)
from pyspark.sql import functions as F

SHARES = {"train": 0.8, "validation": 0.1, "test": 0.1}
DIGITS_TABLE = "gold.digits"


def texts(label: str, max_len: int = 16) -> DatasetConfig:
    return DatasetConfig(
        kind="text", input="silver.t", key="id", label=label, text={"column": "text", "max_len": max_len}
    )


def test_splits_follow_the_shares_and_do_not_move_between_runs(spark):
    keys = spark.range(20_000).select(F.col("id").cast("string").alias("key"))
    split = keys.select("key", assign_split(F.col("key"), SHARES, 7).alias("split"))
    counts = {r["split"]: r["count"] for r in split.groupBy("split").count().collect()}
    assert counts["train"] == pytest.approx(16_000, rel=0.03)
    assert counts["validation"] == pytest.approx(2_000, rel=0.1)
    again = keys.select("key", assign_split(F.col("key"), SHARES, 7).alias("again"))
    assert split.join(again, "key").filter("split != again").count() == 0


def test_sequences_keep_word_order_and_mark_padding_and_unknown_words(spark):
    spec = texts("CASE WHEN rating >= 4 THEN 1 ELSE 0 END", max_len=5)
    rows = [
        ("1", 5, "Fresh, not stale"),
        ("2", 1, "stale, not fresh"),
        ("3", 2, "Odd words here and more words"),
    ]
    source = spark.createDataFrame(rows, "id string, rating int, text string")
    words = labelled_words(source, spec, {"train": 0.98, "validation": 0.01, "test": 0.01}, 1)
    vocabulary = learn_vocabulary(words, 5)
    assert {"fresh", "not", "stale", "words"} <= set(vocabulary)  # the most frequent, 2 each
    ids = {w: i + 2 for i, w in enumerate(vocabulary)}
    got = {r["id"]: (r["label"], r["tokens"]) for r in to_sequences(words, spec, vocabulary).collect()}
    assert got["1"] == (1, [ids["fresh"], ids["not"], ids["stale"], PAD, PAD])
    assert got["2"] == (0, [ids["stale"], ids["not"], ids["fresh"], PAD, PAD])  # same words, other order
    tokens = got["3"][1]
    assert len(tokens) == 5 and tokens.count(UNKNOWN) >= 3  # cut at max_len, unseen words -> 1


def test_a_pinned_version_reads_its_own_files_not_the_folder(spark, small_digits, config):
    tables = small_digits
    first = prepare_dataset(tables, config, "digits")
    moved = config.model_copy(update={"run": config.run.model_copy(update={"seed": 5})})  # re-split
    second = prepare_dataset(tables, moved, "digits")
    assert second.version == first.version + 1
    old, new = pin_table(tables, DIGITS_TABLE, first.version), pin_table(tables, DIGITS_TABLE, second.version)
    folder_files = {f"file://{p}" for p in (tables.root / "gold" / "digits").rglob("*.parquet")}
    assert set(old.files["train"]) | set(new.files["train"]) <= folder_files
    assert not set(old.files["train"]) & set(new.files["train"])  # the folder holds both versions
    for pinned in (old, new):
        assert sum(pinned.rows.values()) == 1797
        test = read_split(pinned, "test", ["digit_id", "label"])
        expected = tables.read(DIGITS_TABLE, version=pinned.version).filter("split = 'test'")
        assert sorted(test["digit_id"].tolist()) == sorted(
            r[0] for r in expected.select("digit_id").collect()
        )


def test_preparing_again_from_the_same_input_keeps_the_version(small_digits, config):
    first = prepare_dataset(small_digits, config, "digits")
    again = prepare_dataset(small_digits, config, "digits")
    assert (again.version, again.rewritten, first.rewritten) == (first.version, False, True)


def test_each_rank_streams_full_batches_from_its_own_row_groups(small_digits, config):
    pinned = pin_table(small_digits, DIGITS_TABLE, prepare_dataset(small_digits, config, "digits").version)
    files, seen = pinned.files["train"], {}
    for rank in (0, 1):
        stream = stream_batches(files, ["digit_id", "pixels"], 32, rank=rank, size=2, shuffle_buffer=64)
        batches = [next(stream) for _ in range(3 * pinned.rows["train"] // 64)]  # ~3 passes of a shard
        assert all(b["digit_id"].shape == (32,) and b["pixels"].shape == (32, 64) for b in batches)
        assert all(b["pixels"].dtype == np.uint8 for b in batches)  # grey levels, as bytes on disk
        seen[rank] = {str(i) for b in batches for i in b["digit_id"]}
    assert not seen[0] & seen[1]  # disjoint shards ...
    all_train = set(read_split(pinned, "train", ["digit_id"])["digit_id"].tolist())
    assert seen[0] | seen[1] == all_train  # ... that cover the split


def test_more_ranks_than_row_groups_is_refused_with_the_fix(small_digits, config):
    one_file = config.model_copy(update={"train": config.train.model_copy(update={"files_per_split": 1})})
    pinned = pin_table(small_digits, DIGITS_TABLE, prepare_dataset(small_digits, one_file, "digits").version)
    assert pinned.row_groups["train"] == 1
    with pytest.raises(TrainingDataError, match=r"1 row group\(s\) for 2 ranks; .*train.files_per_split"):
        pinned.require_shards("train", 2)


def test_more_ranks_than_local_task_slots_is_refused(spark, config):
    from deepspark.config import ConfigError
    from deepspark.stages.train.stage import check_task_slots

    three = config.model_copy(update={"train": config.train.model_copy(update={"num_proc": 3})})
    with pytest.raises(ConfigError, match=r"key 'train.num_proc' = 3: Spark local\[2\] runs 2 task"):
        check_task_slots(spark, three)
    check_task_slots(spark, config)  # 2 ranks fit


def test_a_model_records_the_validation_run_of_exactly_its_silver_versions(spark, tables):
    from deepspark.stages.train.stage import validation_of

    schema = "run_id string, dataset string, table_version long, severity string, success boolean"
    rows = [
        ("r1", "reviews", 0, "critical", True),
        ("r2", "reviews", 1, "critical", True),
        ("r2", "reviews", 1, "critical", False),
        ("r2", "reviews", 1, "warning", False),
        ("r3", "orders", 1, "critical", True),
    ]
    tables.write(spark.createDataFrame(rows, schema), "quality.expectation_results")
    found = validation_of(tables, {"gold.review_sequences": 4, "silver.reviews": 1, "silver.customers": 0})
    assert found["runs"] == {
        "silver.reviews": {"run_id": "r2", "version": 1, "expectations": 3, "critical_failed": 1},
        "silver.customers": None,  # no suite checked that version
    }
    assert found["table"] == "quality.expectation_results" and found["version"] == 0


def test_string_labels_become_class_ids_and_keep_their_names(spark):
    ratings = spark.createDataFrame(
        [(str(i), r, "tea") for i, r in enumerate([5, 3, 1, 4, 3])], "id string, rating int, text string"
    )
    three = "CASE WHEN rating >= 4 THEN 'good' WHEN rating = 3 THEN 'mixed' ELSE 'bad' END"
    spec = texts(three)
    indexed, names = index_labels(labelled_words(ratings, spec, SHARES, 1), "train.sequences.label")
    assert names == ["bad", "good", "mixed"]
    assert {r["id"]: r["label"] for r in indexed.collect()} == {"0": 1, "1": 2, "2": 0, "3": 1, "4": 2}
    ids, none = index_labels(
        labelled_words(ratings, spec.model_copy(update={"label": "rating - 1"}), SHARES, 1), "l"
    )
    assert none is None and sorted(r["label"] for r in ids.collect()) == [0, 2, 2, 3, 4]
    with pytest.raises(
        TrainingDataError, match=r"^where: the label is double; expected class ids 0, 1, \.\.\. or a string"
    ):
        index_labels(
            labelled_words(ratings, spec.model_copy(update={"label": "rating / 2"}), SHARES, 1), "where"
        )
    with pytest.raises(TrainingDataError, match=r"^where: the label holds -2; expected class ids"):
        index_labels(
            labelled_words(ratings, spec.model_copy(update={"label": "rating - 3"}), SHARES, 1), "where"
        )
