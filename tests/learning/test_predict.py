"""Direct tests of the predict stage's scoring: predict_batch_udf over both kinds of input
column (pixel bytes and token arrays) gives what the model itself says, row for row."""

from __future__ import annotations

import numpy as np
import pytest
from deepspark.stages.predict import score
from deepspark.tensors import InputShape, tf_keras


def saved(model, tmp_path, spark):
    path = tmp_path / "model.h5"
    model.save(path)
    return spark.sparkContext.broadcast(path.read_bytes())


@pytest.fixture
def examples(spark):
    rng = np.random.default_rng(7)
    values = rng.integers(0, 16, (700, 64)).astype(np.uint8)
    rows = [(i, bytes(v), [int(x) for x in v], i % 3, "test") for i, v in enumerate(values)]
    schema = "id long, pixels binary, tokens array<int>, label int, split string"
    return values, spark.createDataFrame(rows, schema).repartition(3)


def test_pixel_bytes_are_scored_as_the_model_scores_them(spark, examples, tmp_path):
    keras = tf_keras()
    model = keras.Sequential(
        [keras.layers.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]
    )
    values, df = examples
    scored = score(
        df, saved(model, tmp_path, spark), InputShape("pixels", (8, 8, 1), 10), "id", batch_size=64
    )
    assert scored.columns == ["id", "label", "split", "prediction", "probability"]
    got = scored.orderBy("id").toPandas()
    expected = model.predict(values.reshape(-1, 8, 8, 1), verbose=0)
    assert len(got) == 700
    np.testing.assert_array_equal(got["prediction"], expected.argmax(axis=1))
    np.testing.assert_allclose(got["probability"], expected.max(axis=1), rtol=1e-5)
    assert got["label"].tolist() == [i % 3 for i in range(700)]


def test_token_arrays_are_scored_as_the_model_scores_them(spark, examples, tmp_path):
    keras = tf_keras()
    model = keras.Sequential(
        [
            keras.layers.Input((64,)),
            keras.layers.Embedding(16, 4),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(3, activation="softmax"),
        ]
    )
    values, df = examples
    inputs = InputShape("tokens", (64,), 3, vocabulary=16)
    got = score(df.drop("split"), saved(model, tmp_path, spark), inputs, "id").orderBy("id").toPandas()
    expected = model.predict(values.astype("int32"), verbose=0)
    assert list(got.columns) == ["id", "label", "prediction", "probability"]
    np.testing.assert_array_equal(got["prediction"], expected.argmax(axis=1))
    np.testing.assert_allclose(got["probability"], expected.max(axis=1), rtol=1e-5)
