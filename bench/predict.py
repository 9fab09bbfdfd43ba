"""Batch inference, side by side in one run: the predict stage's ``predict_batch_udf`` path vs
the hand-written ``mapInPandas`` path it replaced, rows/s over the same table and model.

Both score the shipped digits CNN (untrained: speed does not depend on the weights) on the
5,000 MNIST digits repeated ``--copies`` times, broadcast the model file, and load it once per
Python worker. Two anchors: the old path as it was (``model.predict`` per Arrow batch, which
builds a tf.data pipeline per call) and the old path calling ``predict_on_batch`` as the new
one does, so the gap between them is the UDF machinery alone. Each is counted with a ``noop``
write (every row scored, nothing stored); ``--repeats`` times each, after one warm-up.

    .venv/bin/python bench/predict.py [--copies 4] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from digits import repeated_digits
from stats import spread, timed

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def map_in_pandas(df, model_bytes, inputs, key: str, on_batch: bool):
    """The predict stage's scoring before predict_batch_udf, as a user would write it."""
    import pandas as pd
    from deepspark.stages.predict import _model

    keep = [key, "label"]
    column = inputs.column

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = _model(model_bytes.value)
        for batch in batches:
            if batch.empty:
                continue
            examples = inputs.batch(batch[column].to_numpy())
            if on_batch:
                probabilities = model.predict_on_batch(examples)
            else:
                probabilities = model.predict(examples, batch_size=512, verbose=0)
            scored = batch[keep].copy()
            scored["prediction"] = probabilities.argmax(axis=1).astype("int32")
            scored["probability"] = probabilities.max(axis=1).astype("float32")
            yield scored

    schema = f"`{key}` bigint, label int, prediction int, probability float"
    return df.select(*keep, column).mapInPandas(score, schema)


def measure(copies: int, repeats: int) -> dict:
    from deepspark.config import load_config
    from deepspark.session import get_spark
    from deepspark.stages.predict import score
    from deepspark.stages.train.models import build_model
    from deepspark.tensors import InputShape
    from pyspark.sql import functions as F

    work = Path(tempfile.mkdtemp(prefix="deepspark-bench-predict-"))
    config = load_config(
        env="local",
        overrides=[f"run.data_root={work / 'data'}", f"spark.scratch_dir={work / 'spark'}"],
        environ={"DEEPSPARK_SECRET_PII_HMAC_KEY": "bench"},
    )
    spark = get_spark(config)
    repeated = repeated_digits(spark, work, copies)
    table = repeated.select(F.col("digit_id").cast("long"), F.col("label").cast("int"), "pixels")
    table = table.repartition(2).cache()
    rows = table.count()

    inputs = InputShape("pixels", (28, 28, 1), 10)
    model = build_model(config.train.models["digits_cnn"], inputs)
    model.save(work / "model.h5")
    model_bytes = spark.sparkContext.broadcast((work / "model.h5").read_bytes())
    paths = {
        "predict_batch_udf": lambda: score(table, model_bytes, inputs, "digit_id"),
        "mapInPandas, model.predict": lambda: map_in_pandas(table, model_bytes, inputs, "digit_id", False),
        "mapInPandas, predict_on_batch": lambda: map_in_pandas(table, model_bytes, inputs, "digit_id", True),
    }
    seconds: dict[str, list[float]] = {}
    for name, scored in paths.items():

        def run(scored=scored) -> None:
            scored().write.format("noop").mode("overwrite").save()

        run()  # warm-up: every worker loads the model
        seconds[name] = [timed(run) for _ in range(repeats)]
    return {"rows": rows, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.copies, args.repeats)
    if args.json:
        print(json.dumps(result))
        return
    rows = result["rows"]
    speeds = {name: spread([rows / s for s in times]) for name, times in result["seconds"].items()}
    anchor = speeds["mapInPandas, model.predict"]["median"]
    print(f"{rows} rows scored, rows/s (min / median / max of {args.repeats}):")
    for name, speed in speeds.items():
        print(
            f"  {name:32} {speed['min']:9.0f} {speed['median']:9.0f} {speed['max']:9.0f}"
            f"   {speed['median'] / anchor:5.2f}x"
        )


if __name__ == "__main__":
    main()
