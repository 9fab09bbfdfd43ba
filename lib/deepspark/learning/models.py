"""The networks, in tf-keras (Keras 2): Horovod's DistributedOptimizer does not allreduce
gradients under Keras 3, so ranks would drift apart silently.

* CNN for images (grey levels 0..255, rescaled to 0..1 by the first layer): conv layers with
  max-pooling after each but the last, flatten, dense, softmax (the default is the classic MNIST
  net: Conv 32, Conv 64, Conv 64, Dense 64, Dense 10);
* RNN for token sequences: embedding (0 is padding and masked), LSTM or GRU, softmax.

TensorFlow is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepspark.config import CnnConfig, ModelConfig, RnnConfig


def tf_keras() -> Any:
    """tf-keras, with TensorFlow told to use it (must be set before TensorFlow is imported)."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tf_keras

    return tf_keras


@dataclass(frozen=True)
class InputShape:
    """What a network reads from a gold table and the shape of one example."""

    column: str  # pixels | tokens
    shape: tuple[int, ...]  # (side, side, 1) | (max_len,)
    classes: int
    vocabulary: int = 0  # rnn: ids 0..vocabulary-1

    @property
    def dtype(self) -> str:
        return "int32" if self.column == "tokens" else "uint8"

    def batch(self, values: np.ndarray) -> np.ndarray:
        """Examples shaped for the network from a column's values: a 2-D array (a row per
        example), or an object array of rows or of pixel bytes (as pandas hands them over)."""
        from deepspark.learning.data import as_rows

        return np.asarray(as_rows(values), dtype=self.dtype).reshape((len(values), *self.shape))


def build_model(spec: ModelConfig, inputs: InputShape) -> Any:
    """The network ``spec.kind`` describes, not compiled."""
    if spec.kind == "cnn":
        return build_cnn(spec.cnn, inputs)
    return build_rnn(spec.rnn, inputs)


def build_cnn(spec: CnnConfig, inputs: InputShape) -> Any:
    keras = tf_keras()
    layers = keras.layers
    model = keras.Sequential(name="cnn")
    model.add(layers.InputLayer(input_shape=inputs.shape, dtype="uint8"))
    model.add(layers.Rescaling(1 / 255))  # grey levels 0..255 -> 0..1, inside the saved model
    if spec.augment_shift:
        model.add(layers.RandomTranslation(spec.augment_shift, spec.augment_shift, fill_mode="constant"))
    for index, filters in enumerate(spec.conv):
        model.add(layers.Conv2D(filters, spec.kernel_size, activation="relu", padding="valid"))
        if index < len(spec.conv) - 1:
            model.add(layers.MaxPooling2D())
    model.add(layers.Flatten())
    if spec.dropout:
        model.add(layers.Dropout(spec.dropout))
    for units in spec.dense:
        model.add(layers.Dense(units, activation="relu"))
    model.add(layers.Dense(inputs.classes, activation="softmax"))
    return model


def build_rnn(spec: RnnConfig, inputs: InputShape) -> Any:
    keras = tf_keras()
    layers = keras.layers
    cell = layers.LSTM if spec.cell == "lstm" else layers.GRU
    recurrent = cell(spec.units, dropout=spec.dropout)
    model = keras.Sequential(name=spec.cell)
    model.add(layers.InputLayer(input_shape=inputs.shape, dtype="int32"))
    model.add(layers.Embedding(inputs.vocabulary, spec.embedding_dim, mask_zero=True))
    model.add(layers.Bidirectional(recurrent) if spec.bidirectional else recurrent)
    model.add(layers.Dense(inputs.classes, activation="softmax"))
    return model
