"""What training and batch inference share about the networks: how examples are laid out
(:class:`InputShape`: training builds a network for one, inference reads it back from a saved
model) and the Keras both use (:func:`tf_keras`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np


def tf_keras() -> Any:
    """tf-keras, with TensorFlow told to use it (must be set before TensorFlow is imported)."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tf_keras

    return tf_keras


@dataclass(frozen=True)
class InputShape:
    """What a network reads from a gold table and the shape of one example."""

    column: str  # pixels | tokens | values
    shape: tuple[int, ...]  # (height, width, channels) | (max_len,) | (length, features)
    classes: int  # 0 for a regressor
    vocabulary: int = 0  # rnn: ids 0..vocabulary-1
    task: str = "classification"  # | regression
    label_mean: float = 0.0  # regression: the training labels' mean and deviation, which the
    label_std: float = 1.0  # network's output is scaled back by (it learns standardized values)

    @property
    def dtype(self) -> str:
        return {"tokens": "int32", "values": "float32"}.get(self.column, "uint8")

    @property
    def regression(self) -> bool:
        return self.task == "regression"

    @property
    def outputs(self) -> int:
        """Units of the network's last layer: one per class, or the one predicted number."""
        return 1 if self.regression else self.classes

    @property
    def label_dtype(self) -> str:
        return "float32" if self.regression else "int32"

    def loss(self) -> str:
        return "mean_squared_error" if self.regression else "sparse_categorical_crossentropy"

    def metric(self) -> str:
        """The epoch metric beside the loss: mae for a regressor, accuracy for a classifier."""
        return "mae" if self.regression else "accuracy"

    def batch(self, values: np.ndarray) -> np.ndarray:
        """Examples shaped for the network from a column's values: a 2-D array (a row per
        example), or an object array of rows or of pixel bytes (as pandas hands them over)."""
        return np.asarray(as_rows(values), dtype=self.dtype).reshape((len(values), *self.shape))


def as_rows(values: np.ndarray) -> np.ndarray:
    """A column's values as one numpy array, a row per example. List columns arrive 2-D already
    from Petastorm, or as an object array of rows (from pandas). Binary columns arrive as an
    object array of bytes and become a 2-D uint8 array."""
    if values.dtype == object and len(values) and isinstance(values[0], bytes):
        return np.frombuffer(b"".join(values), dtype=np.uint8).reshape(len(values), -1)
    if values.dtype == object and len(values):
        return np.stack(values)
    return values
