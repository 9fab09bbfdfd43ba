"""The networks, in tf-keras (Keras 2): Horovod's DistributedOptimizer does not allreduce
gradients under Keras 3, so ranks would drift apart silently.

* CNN for images (grey levels 0..255, rescaled to 0..1 by the first layer): conv layers with
  max-pooling after each but the last, flatten, dense, softmax (the default is the classic MNIST
  net: Conv 32, Conv 64, Conv 64, Dense 64, Dense 10);
* RNN for token sequences (embedding, 0 is padding and masked) or numeric ones (steps of
  features), LSTM or GRU, softmax;
* MLP for either: dense layers over the flattened image, or over the mean of the text's word
  embeddings (padding left out);
* custom: the user's own function (``builder: package.module:function``).

TensorFlow is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from deepspark.config import CnnConfig, MlpConfig, ModelConfig, RnnConfig
from deepspark.tensors import InputShape, tf_keras


def build_model(spec: ModelConfig, inputs: InputShape) -> Any:
    """The network ``spec.kind`` describes, not compiled."""
    if spec.kind == "cnn":
        return build_cnn(spec.cnn, inputs)
    if spec.kind == "rnn":
        return build_rnn(spec.rnn, inputs)
    if spec.kind == "mlp":
        return build_mlp(spec.mlp, inputs)
    module, function = spec.builder.split(":")
    return getattr(importlib.import_module(module), function)(inputs, **spec.builder_args)


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
    model.add(layers.Dense(inputs.classes, activation="softmax", dtype="float32"))  # any precision
    return model


def build_rnn(spec: RnnConfig, inputs: InputShape) -> Any:
    keras = tf_keras()
    layers = keras.layers
    cell = layers.LSTM if spec.cell == "lstm" else layers.GRU
    recurrent = cell(spec.units, dropout=spec.dropout)
    model = keras.Sequential(name=spec.cell)
    model.add(layers.InputLayer(input_shape=inputs.shape, dtype=inputs.dtype))
    if inputs.column == "tokens":  # numeric sequences (values) go straight into the cell
        model.add(layers.Embedding(inputs.vocabulary, spec.embedding_dim, mask_zero=True))
    model.add(layers.Bidirectional(recurrent) if spec.bidirectional else recurrent)
    model.add(layers.Dense(inputs.classes, activation="softmax", dtype="float32"))  # any precision
    return model


def build_mlp(spec: MlpConfig, inputs: InputShape) -> Any:
    keras = tf_keras()
    layers = keras.layers
    model = keras.Sequential(name="mlp")
    model.add(layers.InputLayer(input_shape=inputs.shape, dtype=inputs.dtype))
    if inputs.column == "tokens":
        model.add(layers.Embedding(inputs.vocabulary, spec.embedding_dim, mask_zero=True))
        model.add(layers.GlobalAveragePooling1D())  # the mask leaves padding out of the mean
    elif inputs.column == "pixels":
        model.add(layers.Rescaling(1 / 255))
        model.add(layers.Flatten())
    else:
        model.add(layers.Flatten())
    for units in spec.dense:
        model.add(layers.Dense(units, activation="relu"))
        if spec.dropout:
            model.add(layers.Dropout(spec.dropout))
    model.add(layers.Dense(inputs.classes, activation="softmax", dtype="float32"))  # any precision
    return model
