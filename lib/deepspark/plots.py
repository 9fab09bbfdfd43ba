"""PNG plots for the run report, drawn from small, already-collected results (never a DataFrame)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def plot_row_accounting(results: dict, path: Path) -> Path:
    """Rows in, out, quarantined and deduplicated per stage (stage results, in run order)."""
    kinds = ["rows_in", "rows_out", "rows_quarantined", "rows_deduplicated"]
    frame = pd.DataFrame(
        [[getattr(result, kind) for kind in kinds] for result in results.values()],
        index=list(results),
        columns=[kind.removeprefix("rows_") for kind in kinds],
    )
    figure, axes = _subplots(figsize=(8, 3.5))
    frame.plot.bar(ax=axes, width=0.8, rot=0)
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars, never over them
    axes.set_yscale("symlog")
    axes.set_ylabel("rows")
    axes.set_title("Row accounting per stage")
    return _save(figure, path)


def plot_elbow(curve: list[dict], path: Path) -> Path:
    """Inertia (the elbow) and silhouette against k."""
    figure, inertia = _subplots(figsize=(6, 3.5))
    ks = [point["k"] for point in curve]
    inertia.plot(ks, [point["inertia"] for point in curve], "o-", color="tab:blue")
    inertia.set_xlabel("k")
    inertia.set_ylabel("inertia", color="tab:blue")
    if all(point["silhouette"] is not None for point in curve):
        silhouette = inertia.twinx()
        silhouette.plot(ks, [point["silhouette"] for point in curve], "s--", color="tab:orange")
        silhouette.set_ylabel("silhouette", color="tab:orange")
    inertia.set_title("k-means: elbow and silhouette")
    return _save(figure, path)


def plot_clusters(points: pd.DataFrame, path: Path) -> Path:
    """Segments on the first two principal components."""
    figure, axes = _subplots(figsize=(6, 4.5))
    for segment, group in points.groupby("segment"):
        axes.scatter(group.pc1, group.pc2, s=6, alpha=0.6, label=f"segment {segment}")
    axes.set_xlabel("PC 1")
    axes.set_ylabel("PC 2")
    axes.legend(markerscale=3, fontsize=8)
    axes.set_title("k-means segments (2-D PCA)")
    return _save(figure, path)


def plot_top_rules(rules: list[dict], path: Path) -> Path:
    """The rules with the highest lift, as horizontal bars."""
    figure, axes = _subplots(figsize=(7, 0.35 * max(3, len(rules)) + 1))
    labels = [f"{', '.join(r['antecedent'])} -> {', '.join(r['consequent'])}" for r in rules]
    axes.barh(labels[::-1], [r["lift"] for r in rules][::-1], color="tab:green")
    axes.set_xlabel("lift")
    axes.set_title("association rules: top by lift")
    return _save(figure, path)


def plot_importances(importances: list[dict], title: str, path: Path) -> Path:
    figure, axes = _subplots(figsize=(7, 0.35 * max(3, len(importances)) + 1))
    axes.barh(
        [i["feature"] for i in importances][::-1],
        [i["importance"] for i in importances][::-1],
        color="tab:purple",
    )
    axes.set_xlabel("importance")
    axes.set_title(title)
    return _save(figure, path)


def plot_confusion(classes: list[str], counts: list[list[int]], title: str, path: Path) -> Path:
    figure, axes = _subplots(figsize=(4.5, 4))
    axes.imshow(counts, cmap="Blues")
    axes.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    axes.set_yticks(range(len(classes)), classes)
    axes.set_xlabel("predicted")
    axes.set_ylabel("actual")
    for i, row in enumerate(counts):
        for j, count in enumerate(row):
            axes.text(j, i, str(count), ha="center", va="center")
    axes.set_title(title)
    return _save(figure, path)


def _subplots(*args, **kwargs):
    """``pyplot.subplots``, importing matplotlib with the first figure: the import costs about
    a second, and most commands (every stage but analytics, train and report) draw nothing."""
    import matplotlib

    matplotlib.use("Agg")  # no display on clusters and CI
    from matplotlib import pyplot

    return pyplot.subplots(*args, **kwargs)


def _save(figure, path: Path) -> Path:
    from matplotlib import pyplot

    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return path


def plot_training_curves(history: list[dict], title: str, path: Path, second: str = "accuracy") -> Path:
    """Loss and ``second`` (accuracy, or a regressor's mae) per epoch, training beside
    validation (one row per epoch)."""
    from matplotlib.ticker import MaxNLocator

    figure, (loss, other) = _subplots(1, 2, figsize=(9, 3.5))
    epochs = [row["epoch"] + 1 for row in history]
    for axes, metric in ((loss, "loss"), (other, second)):
        axes.plot(epochs, [row[metric] for row in history], "o-", label="train")
        if all(f"val_{metric}" in row for row in history):
            axes.plot(epochs, [row[f"val_{metric}"] for row in history], "s--", label="validation")
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel(metric)
        axes.legend()
    figure.suptitle(title)
    return _save(figure, path)


def plot_predictions(actual, predicted, title: str, path: Path) -> Path:
    """A regressor's predictions against the labels (one point per test row; the diagonal is a
    perfect prediction)."""
    figure, axes = _subplots(figsize=(4.5, 4.5))
    axes.scatter(actual, predicted, s=8, alpha=0.5)
    if len(actual):
        low, high = float(min(min(actual), min(predicted))), float(max(max(actual), max(predicted)))
        axes.plot([low, high], [low, high], "k--", linewidth=1)
    axes.set_xlabel("label")
    axes.set_ylabel("prediction")
    axes.set_title(title)
    return _save(figure, path)
