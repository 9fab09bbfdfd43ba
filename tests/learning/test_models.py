"""The networks, device choice, metrics and the config that shapes them."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from deepspark.config import CnnConfig, ConfigError, ModelConfig, RnnConfig, load_config
from deepspark.stages.train.evaluate import (
    bag_of_words,
    classification_metrics,
    majority_baseline,
    mean_baseline,
    regression_metrics,
)
from deepspark.stages.train.models import build_cnn, build_mlp, build_model, build_rnn, smallest_side
from deepspark.stages.train.ranks import KEEP_FREED_MEMORY, choose_device, rank_environment
from deepspark.stages.train.schedule import learning_rate_at
from deepspark.stages.train.stage import check_network
from deepspark.tensors import InputShape

MNIST = InputShape("pixels", (28, 28, 1), 10)


def _layers(model) -> list[tuple]:
    described = []
    for layer in model.layers:
        kind = type(layer).__name__
        size = getattr(layer, "filters", None) or getattr(layer, "units", None)
        described.append((kind, size) if size else (kind,))
    return described


def test_the_default_cnn_is_the_classic_mnist_net():
    model = build_cnn(CnnConfig(), MNIST)
    assert _layers(model) == [
        ("Rescaling",),
        ("Conv2D", 32),
        ("MaxPooling2D",),
        ("Conv2D", 64),
        ("MaxPooling2D",),
        ("Conv2D", 64),
        ("Flatten",),
        ("Dense", 64),
        ("Dense", 10),
    ]
    assert model.count_params() == 93_322


def test_the_cnn_follows_its_config():
    spec = CnnConfig(conv=[8, 16], kernel_size=5, dense=[], dropout=0.5, augment_shift=0.1)
    model = build_cnn(spec, InputShape("pixels", (28, 28, 1), 3))
    assert _layers(model) == [
        ("Rescaling",),
        ("RandomTranslation",),
        ("Conv2D", 8),
        ("MaxPooling2D",),
        ("Conv2D", 16),
        ("Flatten",),
        ("Dropout",),
        ("Dense", 3),
    ]
    assert model.output_shape == (None, 3)


@pytest.mark.parametrize("conv, kernel_size", [([32, 64, 64], 3), ([8], 3), ([8, 16], 5)])
def test_the_smallest_side_is_where_the_cnn_starts_to_build(conv, kernel_size):
    spec = CnnConfig(conv=conv, kernel_size=kernel_size)
    side = smallest_side(len(conv), kernel_size)
    assert build_cnn(spec, InputShape("pixels", (side, side, 1), 10)).output_shape == (None, 10)
    with pytest.raises(ValueError):
        build_cnn(spec, InputShape("pixels", (side - 1, side, 1), 10))


def test_a_cnn_too_deep_for_its_images_is_refused_before_any_rank_starts():
    config = load_config(env="local")
    spec = config.train.models["digits_cnn"]  # conv [32, 64, 64], kernel 3: 18x18 at least
    with pytest.raises(
        ConfigError,
        match=r"key 'train.models.digits_cnn.cnn.conv' = \[32, 64, 64\] with kernel_size 3 needs images of "
        r"at least 18x18 pixels; gold.digits holds 8x8 ones: expected fewer conv layers \(e.g. \[32, 64\]\), "
        r"a smaller kernel_size or a larger train.datasets.digits.images.size$",
    ):
        check_network(spec, InputShape("pixels", (8, 8, 1), 10), config, "train.models.digits_cnn")
    check_network(spec, InputShape("pixels", (18, 18, 1), 10), config, "train.models.digits_cnn")


def test_pixel_bytes_become_images_the_net_sees_in_0_to_1():
    inputs = InputShape("pixels", (2, 2, 1), 10)
    raw = np.array([bytes([0, 255, 51, 102]), bytes([1, 2, 3, 4])], dtype=object)  # as pandas has them
    images = inputs.batch(raw)
    assert images.shape == (2, 2, 2, 1) and images.dtype == np.uint8
    assert images[0, :, :, 0].tolist() == [[0, 255], [51, 102]]
    rescale = build_cnn(CnnConfig(), MNIST).layers[0]
    np.testing.assert_allclose(rescale(images).numpy()[0, :, :, 0], [[0, 1], [0.2, 0.4]], rtol=1e-6)


@pytest.mark.parametrize(("cell", "layer"), [("lstm", "LSTM"), ("gru", "GRU")])
def test_the_rnn_embeds_masks_padding_and_reads_in_order(cell, layer):
    inputs = InputShape("tokens", (6,), 2, vocabulary=20)
    model = build_rnn(RnnConfig(cell=cell, units=8, bidirectional=True), inputs)
    assert _layers(model)[0] == ("Embedding",) and model.layers[0].mask_zero
    assert type(model.layers[1].forward_layer).__name__ == layer
    batch = inputs.batch(np.array([[3, 4, 0, 0, 0, 0], [4, 3, 0, 0, 0, 0]]))
    first, second = model.predict(batch, verbose=0)
    assert not np.allclose(first, second)  # the same words in another order read differently
    padded = inputs.batch(np.array([[3, 4, 0, 0, 0, 0], [3, 4, 0, 0, 0, 0]]))
    assert build_model(ModelConfig(kind="rnn", dataset="t"), inputs).output_shape == (None, 2)
    np.testing.assert_allclose(*model.predict(padded, verbose=0), rtol=1e-6)


@pytest.mark.parametrize(
    ("assigned", "visible", "local_rank", "expected"),
    [
        (["1"], 2, 0, (1, "GPU 1 (assigned by Spark)")),
        (["0"], 0, 1, (None, "CPU (Spark assigned GPU 0; TensorFlow sees 0 GPU(s))")),
        ([], 2, 3, (1, "GPU 1 (by local rank; Spark assigned none)")),
        ([], 0, 0, (None, "CPU (no GPU)")),
    ],
)
def test_a_rank_takes_the_gpu_spark_assigned_or_falls_back(assigned, visible, local_rank, expected):
    assert choose_device(assigned, visible, local_rank) == expected


def test_a_ranks_process_keeps_freed_memory_unless_its_caller_says_otherwise(monkeypatch):
    for name in KEEP_FREED_MEMORY:
        monkeypatch.delenv(name, raising=False)
    job = SimpleNamespace(threads=2)  # all rank_environment reads of a TrainingJob
    env = rank_environment(job)
    assert {name: env[name] for name in KEEP_FREED_MEMORY} == KEEP_FREED_MEMORY
    assert env["TF_USE_LEGACY_KERAS"] == "1" and env["OMP_NUM_THREADS"] == "2"
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "0")
    assert rank_environment(job)["MALLOC_TRIM_THRESHOLD_"] == "0"


def test_metrics_match_scikit_learn():
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    rng = np.random.default_rng(3)
    actual = rng.integers(0, 4, 300)
    predicted = np.where(rng.random(300) < 0.7, actual, rng.integers(0, 4, 300))
    metrics = classification_metrics(actual, predicted, 4)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(actual, predicted))
    np.testing.assert_allclose(
        [c["f1"] for c in metrics["per_class"]], f1_score(actual, predicted, average=None)
    )
    assert metrics["macro_f1"] == pytest.approx(f1_score(actual, predicted, average="macro"))
    assert metrics["confusion"] == confusion_matrix(actual, predicted).tolist()
    assert majority_baseline(np.array([1, 1, 0]), np.array([1, 0, 0, 0])) == 0.25


def test_bag_of_words_forgets_order_and_padding():
    counts = bag_of_words(np.array([[3, 4, 0], [4, 3, 0], [3, 3, 2]]), 5)
    assert counts.tolist() == [[0, 0, 0, 1, 1], [0, 0, 0, 1, 1], [0, 0, 1, 2, 0]]


def test_bad_training_config_names_the_file_and_key():
    with pytest.raises(ConfigError, match=r"--set train.splits=.*key 'train.splits'.*add up to 1, got 1.1"):
        load_config(env="local", overrides=["train.splits={train: 0.8, validation: 0.2, test: 0.1}"])
    with pytest.raises(ConfigError, match=r"key 'train.predict.digits.model' = 'nope': expected a model"):
        load_config(env="local", overrides=["train.predict.digits.model=nope"])
    with pytest.raises(ConfigError, match=r"key 'train.models.digits_cnn.cnn.conv' = \[\]"):
        load_config(env="local", overrides=["train.models.digits_cnn.cnn.conv=[]"])
    with pytest.raises(ConfigError, match=r"key 'train.reader_pool' = 'thread'"):
        load_config(env="local", overrides=["train.reader_pool=thread"])
    with pytest.raises(ConfigError, match=r"decay_epochs \[1, 10\]: expected distinct epochs, none before"):
        load_config(env="local", overrides=["train.models.digits_cnn.decay_epochs=[1, 10]"])
    with pytest.raises(ConfigError, match=r"key 'train.models.digits_cnn.early_stopping.monitor' = 'f1'"):
        load_config(env="local", overrides=["train.models.digits_cnn.early_stopping={monitor: f1}"])
    with pytest.raises(
        ConfigError,
        match=r"key 'train.models.digits_cnn.dataset' = 'pets': expected a dataset from train.datasets: "
        r"digits, review_sequences$",
    ):
        load_config(env="local", overrides=["train.models.digits_cnn.dataset=pets"])
    with pytest.raises(
        ConfigError,
        match=r"key 'train.models.review_rnn.dataset' = 'digits': a rnn model reads text or sequences, "
        r"digits is images; expected one of: review_sequences$",
    ):
        load_config(env="local", overrides=["train.models.review_rnn.dataset=digits"])
    with pytest.raises(ConfigError, match=r"key 'train.models.digits_cnn'.*kind custom needs builder"):
        load_config(env="local", overrides=["train.models.digits_cnn.kind=custom"])
    with pytest.raises(ConfigError, match=r"key 'train.datasets.digits.images'.*exactly one of column"):
        load_config(env="local", overrides=["train.datasets.digits.images={column: a, columns: 'p*'}"])


def test_the_mlp_flattens_images_and_averages_word_embeddings():
    from deepspark.config import MlpConfig

    spec = MlpConfig(dense=[8, 4], dropout=0.1, embedding_dim=6)
    image = build_mlp(spec, InputShape("pixels", (10, 12, 3), 5))
    assert [type(layer).__name__ for layer in image.layers] == [
        "Rescaling",
        "Flatten",
        "Dense",
        "Dropout",
        "Dense",
        "Dropout",
        "Dense",
    ]
    assert image.input_shape == (None, 10, 12, 3) and image.output_shape == (None, 5)
    text = build_mlp(spec, InputShape("tokens", (7,), 3, vocabulary=50))
    assert [type(layer).__name__ for layer in text.layers][:2] == ["Embedding", "GlobalAveragePooling1D"]
    padded = np.array([[5, 9, 0, 0, 0, 0, 0]], dtype="int32")
    same_words = np.array([[5, 9, 0]], dtype="int32")
    short = build_mlp(spec, InputShape("tokens", (3,), 3, vocabulary=50))
    short.set_weights(text.get_weights())
    np.testing.assert_allclose(text(padded, training=False), short(same_words, training=False), rtol=1e-6)


def test_the_rate_at_every_epoch_is_the_documented_schedule():
    """The shipped CNN's schedule on 2 ranks: warm up from 1e-3 to 2e-3 over epochs 0-1, then
    2e-3, and once a tenth at epoch 10 and once more at 14 (not compounding, never reset)."""
    spec = ModelConfig(
        kind="cnn", dataset="digits", epochs=16, warmup_epochs=2, decay_epochs=[14, 10], learning_rate=1e-3
    )
    rates = [learning_rate_at(epoch, spec, ranks=2) for epoch in range(16)]
    expected = [1e-3, 1.5e-3] + [2e-3] * 8 + [2e-4] * 4 + [2e-5] * 2
    assert rates == pytest.approx(expected, rel=1e-12)
    single = spec.model_copy(update={"warmup_epochs": 0, "decay_epochs": []})
    assert {learning_rate_at(epoch, single, ranks=1) for epoch in range(16)} == {1e-3}


def test_a_regressor_ends_in_one_unit_scaled_back_to_the_label_units():
    inputs = InputShape("values", (5, 2), 0, task="regression", label_mean=50.0, label_std=4.0)
    for kind in ("mlp", "rnn"):
        model = build_model(ModelConfig(kind=kind, dataset="waves", rnn=RnnConfig(units=4)), inputs)
        assert model.output_shape == (None, 1)
        last = [layer for layer in model.layers if layer.get_weights()][-1]  # the linear unit
        last.set_weights([np.zeros_like(w) for w in last.get_weights()])  # predicts 0 standardized
        batch = np.random.default_rng(0).normal(size=(3, 5, 2)).astype("float32")
        np.testing.assert_allclose(model.predict(batch, verbose=0), [[50.0]] * 3)  # = the mean
        last.set_weights([np.zeros_like(last.get_weights()[0]), np.ones(1)])  # 1 deviation above
        np.testing.assert_allclose(model.predict(batch, verbose=0), [[54.0]] * 3)


def test_regression_metrics_match_scikit_learn():
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    rng = np.random.default_rng(2)
    actual = rng.normal(10, 3, 200)
    predicted = actual + rng.normal(0, 1, 200)
    scores = regression_metrics(actual, predicted)
    assert scores["rows"] == 200
    assert scores["rmse"] == pytest.approx(np.sqrt(mean_squared_error(actual, predicted)))
    assert scores["mae"] == pytest.approx(mean_absolute_error(actual, predicted))
    assert scores["r2"] == pytest.approx(r2_score(actual, predicted))
    assert mean_baseline(actual[:100], actual[100:]) == pytest.approx(
        np.sqrt(mean_squared_error(actual[100:], np.full(100, actual[:100].mean())))
    )
