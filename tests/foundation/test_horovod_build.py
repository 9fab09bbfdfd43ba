"""The patched Horovod build: 2 ranks over Gloo agree, and tf-keras training keeps them in sync."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.slow


def _allreduce_rank_ids():
    import horovod.tensorflow as hvd
    import tensorflow as tf

    hvd.init()
    total = hvd.allreduce(tf.constant([float(hvd.rank() + 1)]), op=hvd.Sum)
    return hvd.rank(), hvd.size(), float(total.numpy()[0]), hvd.gloo_enabled()


def _fit_and_gather_weights():
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import horovod.tensorflow.keras as hvd
    import numpy as np
    import tf_keras as keras

    hvd.init()
    rng = np.random.default_rng(hvd.rank())  # each rank sees different data
    x = rng.normal(size=(256, 4)).astype("float32")
    y = (x.sum(axis=1) > 0).astype("float32")
    model = keras.Sequential(
        [
            keras.layers.Dense(8, activation="relu", input_shape=(4,)),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer=hvd.DistributedOptimizer(keras.optimizers.Adam(0.01)), loss="binary_crossentropy")
    model.fit(
        x,
        y,
        epochs=2,
        batch_size=32,
        verbose=0,
        callbacks=[hvd.callbacks.BroadcastGlobalVariablesCallback(0)],
    )
    return np.concatenate([w.ravel() for w in model.get_weights()])


def run_two_ranks(fn):
    import horovod

    return horovod.run(fn, np=2, hosts="localhost:2", use_gloo=True)


def test_two_ranks_allreduce_over_gloo():
    results = sorted(run_two_ranks(_allreduce_rank_ids))
    assert results == [(0, 2, 3.0, True), (1, 2, 3.0, True)]


def test_two_rank_tf_keras_fit_keeps_weights_identical():
    import numpy as np

    rank0, rank1 = run_two_ranks(_fit_and_gather_weights)
    assert rank0.shape == rank1.shape and rank0.size > 40
    np.testing.assert_array_equal(rank0, rank1)
    # The weights moved: the test would notice a DistributedOptimizer that did nothing.
    assert np.abs(rank0).sum() > 0
