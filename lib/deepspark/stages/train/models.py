"""The networks, in tf-keras (Keras 2): Horovod's DistributedOptimizer does not allreduce
gradients under Keras 3, so ranks would drift apart silently.

* CNN for images (grey levels 0..255, rescaled to 0..1 by the first layer): conv layers with
  max-pooling after each but the last, flatten, dense, output (the default is the classic MNIST
  net: Conv 32, Conv 64, Conv 64, Dense 64, Dense 10);
* RNN for token sequences (embedding, 0 is padding and masked) or numeric ones (steps of
  features), LSTM or GRU, output;
* MLP for either: dense layers over the flattened image, or over the mean of the text's word
  embeddings (padding left out);
* custom: the user's own function (``builder: package.module:function``).

Each ends in :func:`output_layer`: a softmax over the classes, or one linear unit for a
regression dataset.

TensorFlow is imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

from deepspark.config import CnnConfig, MlpConfig, ModelConfig, RnnConfig
from deepspark.tensors import InputShape, tf_keras


def build_model(spec: ModelConfig, inputs: InputShape) -> Any:
    """The network ``spec.kind`` describes, not compiled; a regressor's output scaled back to
    the label's units (:func:`in_label_units`)."""
    if spec.kind == "cnn":
        model = build_cnn(spec.cnn, inputs)
    elif spec.kind == "rnn":
        model = build_rnn(spec.rnn, inputs)
    elif spec.kind == "mlp":
        model = build_mlp(spec.mlp, inputs)
    else:
        module, function = spec.builder.split(":")
        model = getattr(importlib.import_module(module), function)(inputs, **spec.builder_args)
    return in_label_units(model, inputs) if inputs.regression else model


def in_label_units(model: Any, inputs: InputShape) -> Any:
    """``model`` followed by ``output * std + mean`` of the training labels: the network learns
    standardized values (whatever the label's scale, as the features are), and the saved model
    predicts in the label's own units, inside or outside the pipeline."""
    keras = tf_keras()
    scale = keras.layers.Rescaling(inputs.label_std, offset=inputs.label_mean, dtype="float32")
    return keras.Model(model.inputs, scale(model.outputs[0]), name=model.name)


def output_layer(layers, inputs: InputShape) -> Any:
    """The last layer, float32 under any precision: a softmax over the classes, or one linear
    unit for a regressor."""
    if inputs.regression:
        return layers.Dense(1, dtype="float32")
    return layers.Dense(inputs.classes, activation="softmax", dtype="float32")


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
    model.add(output_layer(layers, inputs))
    return model


def smallest_side(convolutions: int, kernel_size: int) -> int:
    """The smallest image side that :func:`build_cnn`'s ``convolutions`` layers take: each
    convolution (no padding) takes ``kernel_size - 1`` pixels off a side, each 2x2 max-pool
    between two halves it, and the last convolution must leave at least one pixel."""
    side = kernel_size
    for _ in range(convolutions - 1):
        side = 2 * side + kernel_size - 1
    return side


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
    model.add(output_layer(layers, inputs))
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
    model.add(output_layer(layers, inputs))
    return model
