"""Held-out metrics for a trained network (a classifier's or a regressor's), and the baselines
it must beat.

Pure numpy (and scikit-learn for the baseline) over arrays already read from the test split.
"""

from __future__ import annotations

import numpy as np

from deepspark.results import RegressionScores, TestScores


def classification_metrics(
    actual: np.ndarray, predicted: np.ndarray, classes: int, names: list[str] | None = None
) -> TestScores:
    """Accuracy, per-class precision / recall / F1 / support (under ``names``, default the ids),
    macro F1 and the confusion matrix (rows: actual, columns: predicted)."""
    actual, predicted = np.asarray(actual, dtype=int), np.asarray(predicted, dtype=int)
    confusion = np.zeros((classes, classes), dtype=int)
    np.add.at(confusion, (actual, predicted), 1)
    per_class = []
    for label in range(classes):
        hits = confusion[label, label]
        said, real = confusion[:, label].sum(), confusion[label, :].sum()
        precision = hits / said if said else 0.0
        recall = hits / real if real else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append(
            {
                "class": label,
                "name": names[label] if names else str(label),
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "support": int(real),
            }
        )
    return {
        "rows": int(len(actual)),
        "accuracy": float((actual == predicted).mean()) if len(actual) else 0.0,
        "macro_f1": float(np.mean([c["f1"] for c in per_class])),
        "per_class": per_class,
        "confusion": confusion.tolist(),
    }


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> RegressionScores:
    """RMSE, MAE and R² (1 - squared error over the test labels' own variance: 0 is no better
    than their mean, below 0 worse)."""
    actual, predicted = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float).ravel()
    error = predicted - actual
    spread = float(((actual - actual.mean()) ** 2).sum()) if len(actual) else 0.0
    return {
        "rows": int(len(actual)),
        "rmse": float(np.sqrt((error**2).mean())) if len(actual) else 0.0,
        "mae": float(np.abs(error).mean()) if len(actual) else 0.0,
        "r2": 1.0 - float((error**2).sum()) / spread if spread else 0.0,
    }


def mean_baseline(train_labels: np.ndarray, test_labels: np.ndarray) -> float:
    """RMSE of always answering the training labels' mean."""
    guess = float(np.mean(np.asarray(train_labels, dtype=float)))
    return float(np.sqrt(((np.asarray(test_labels, dtype=float) - guess) ** 2).mean()))


def summary_metrics(test: TestScores | RegressionScores) -> dict[str, float]:
    """The figures a model's lineage row and tracking record: a classifier's accuracy and macro
    F1, or a regressor's RMSE, MAE and R²."""
    if "rmse" in test:
        return {"test_rmse": test["rmse"], "test_mae": test["mae"], "test_r2": test["r2"]}
    return {"test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"]}


def headline(test: TestScores | RegressionScores) -> str:
    """One phrase for the stage line: "test accuracy 0.9812" or "test RMSE 1.204 (R² 0.913)"."""
    if "rmse" in test:
        return f"test RMSE {test['rmse']:.4g} (R² {test['r2']:.3f})"
    return f"test accuracy {test['accuracy']:.4f}"


def majority_baseline(train_labels: np.ndarray, test_labels: np.ndarray) -> float:
    """Accuracy of always answering the most frequent training label."""
    majority = np.bincount(np.asarray(train_labels, dtype=int)).argmax()
    return float((np.asarray(test_labels) == majority).mean())


def bag_of_words(tokens: np.ndarray, vocabulary: int) -> np.ndarray:
    """Word counts per row (the order thrown away); id 0 (padding) is not a word."""
    counts = np.zeros((len(tokens), vocabulary), dtype=np.float32)
    rows = np.repeat(np.arange(len(tokens)), tokens.shape[1])
    np.add.at(counts, (rows, tokens.ravel()), 1)
    counts[:, 0] = 0
    return counts


def bag_of_words_baseline(
    train_tokens: np.ndarray,
    train_labels: np.ndarray,
    test_tokens: np.ndarray,
    test_labels: np.ndarray,
    vocabulary: int,
) -> float:
    """Accuracy of a logistic regression on word counts: what a model blind to order reaches."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=2000)
    model.fit(bag_of_words(train_tokens, vocabulary), train_labels)
    return float(model.score(bag_of_words(test_tokens, vocabulary), test_labels))
