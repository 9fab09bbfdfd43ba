"""Stage train (data side): bronze digits -> ``gold.digits``, ready for the CNN.

Input: ``bronze.digits``. Output: ``gold.digits`` (label, pixels scaled to 0..1 as
array<float>, side, split). Parameters: ``run.seed``. The Petastorm readers and the
Horovod training over this table land with the deep-learning issue; until then this stage
prepares the data and says in the summary that no model was trained.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from deepspark.pipeline import Run, StageResult


def to_training_digits(bronze: DataFrame, seed: int) -> DataFrame:
    split = F.pmod(F.xxhash64("digit_id", F.lit(seed)), F.lit(10))
    return bronze.select(
        "digit_id",
        F.col("label").cast("int").alias("label"),
        F.col("width").alias("side"),
        F.transform("pixels", lambda p: (p.cast("float") / F.lit(255.0)).cast("float")).alias("pixels"),
        F.when(split < 8, "train").when(split < 9, "validation").otherwise("test").alias("split"),
    )


def prepare_training_data(run: Run) -> StageResult:
    digits = to_training_digits(run.tables.read("bronze.digits"), run.config.run.seed)
    written = run.tables.write(digits, "gold.digits", mode="overwrite")
    return StageResult(
        rows_out=written.rows_written,
        tables={"gold.digits": written.version},
        metrics={"model_trained": False},
        notes=["training data prepared; distributed training not built yet"],
    )
