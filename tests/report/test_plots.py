"""Every figure a run draws: a PNG of the size asked for, with something drawn on it, and no
figure left open (a run draws dozens)."""

from __future__ import annotations

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import pandas as pd
import pytest
from deepspark import plots
from deepspark.run import StageResult

RULES = [
    {"antecedent": ["tea"], "consequent": ["milk"], "lift": 2.5},
    {"antecedent": ["a", "b"], "consequent": ["c"], "lift": 1.2},
]
HISTORY = [
    {"epoch": e, "loss": 1 / (e + 1), "accuracy": e / 3, "val_loss": 1.1 / (e + 1), "val_accuracy": e / 4}
    for e in range(3)
]
POINTS = pd.DataFrame({"pc1": [0, 1, 2, 3.0], "pc2": [1, 0, 3, 2.0], "segment": [0, 0, 1, 1]})
FIGURES = {
    "rows": (
        lambda p: plots.plot_row_accounting(
            {"clean": StageResult(rows_in=10, rows_out=8, rows_quarantined=2)}, p
        ),
        (350, 800),
    ),
    "elbow": (
        lambda p: plots.plot_elbow(
            [{"k": 2, "inertia": 9, "silhouette": 0.5}, {"k": 3, "inertia": 4, "silhouette": 0.6}], p
        ),
        (350, 600),
    ),
    "clusters": (lambda p: plots.plot_clusters(POINTS, p), (450, 600)),
    "rules": (lambda p: plots.plot_top_rules(RULES, p), (205, 700)),
    "importances": (
        lambda p: plots.plot_importances([{"feature": "f", "importance": 0.7}], "t", p),
        (205, 700),
    ),
    "confusion": (lambda p: plots.plot_confusion(["0", "1"], [[5, 1], [2, 4]], "t", p), (400, 450)),
    "curves": (lambda p: plots.plot_training_curves(HISTORY, "t", p), (350, 900)),
}


@pytest.mark.parametrize("name", FIGURES)
def test_each_figure_is_a_png_of_its_size_with_something_drawn(name, tmp_path):
    draw, (height, width) = FIGURES[name]
    path = draw(tmp_path / "nested" / f"{name}.png")
    image = mpimg.imread(path)
    assert image.shape[:2] == (height, width)
    drawn = (image[..., :3] < 0.9).any(axis=-1).mean()  # share of pixels that are not near-white
    assert drawn > 0.01, f"{name}: {drawn:.3%} of the figure is drawn"
    assert plt.get_fignums() == []
