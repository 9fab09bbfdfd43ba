"""The shapes of what stages record in ``StageResult.metrics`` and the report reads back.

They are TypedDicts, not classes: a stage result is saved as JSON (``runs/<id>/stages/``) and
read back by another process (``deepspark report``), so plain mappings of these keys are what
both sides hold. A stage builds them and the report reads them by these names only.
"""

from __future__ import annotations

from typing import NotRequired, TypedDict


class CleanCounts(TypedDict):
    """One dataset's row accounting in clean: every row in is in silver, quarantine or
    deduplicated (``balanced``)."""

    rows_in: int
    rows_out: int
    rows_quarantined: int
    rows_deduplicated: int
    balanced: bool
    exact_duplicates: int
    key_duplicates: int
    superseded: int
    quarantine_reasons: dict[str, int]
    top_rules: NotRequired[list[tuple[str, int]]]  # the rules that rejected most rows, with counts
    batches: list[str]
    rebuilt: NotRequired[bool]  # silver built again from every batch: the rules changed


ClassScores = TypedDict(  # "class" is a keyword, so the functional form
    "ClassScores",
    {"class": int, "name": str, "precision": float, "recall": float, "f1": float, "support": int},
)
"""Precision, recall and F1 of one class on the test split (``name``: its label value)."""


class TestScores(TypedDict):
    """A classifier on held-out rows."""

    rows: int
    accuracy: float
    macro_f1: float
    per_class: list[ClassScores]
    confusion: list[list[int]]


class RegressionScores(TypedDict):
    """A regressor on held-out rows, in the label's units (R²: against the test labels' mean)."""

    rows: int
    rmse: float
    mae: float
    r2: float


class MlflowRecord(TypedDict):
    """Where a model's MLflow run is, and its version in MLflow's registry (networks only)."""

    run_id: str
    experiment_id: str
    registered_version: NotRequired[int]
    champion: NotRequired[bool]


class TrainOutcome(TypedDict):
    """One trained (or reused, or resumed) network: where it is, what it read, how it scored."""

    model: str
    fingerprint: str
    table: str
    table_version: int
    reused: bool
    ranks: int | None
    backend: str  # train.backend: horovod | tf_distribute
    attempts: int  # starts of its ranks (more than one: it failed and resumed); 0 when reused
    device: str | None
    resumed_from_epoch: int | None
    epochs: int
    best_epoch: int | None  # early stopping: the epoch whose weights were saved
    samples_per_second: float | None
    history: list[dict[str, float]]
    plots: list[str]
    test: TestScores | RegressionScores
    majority_baseline: NotRequired[float]  # text: the baselines on the same split
    bag_of_words_baseline: NotRequired[float]
    mean_baseline_rmse: NotRequired[float]  # a regressor: RMSE of always the training mean
    registry_version: NotRequired[int]  # set once registered in ml.models
    mlflow: NotRequired[MlflowRecord | None]  # set by the run that trained it, when tracking is on


class TreeSummary(TypedDict):
    """One decision tree: its inputs, the chosen parameters, held-out metrics and its rules."""

    inputs: dict[str, int]
    kind: str
    label: str
    impurity: str
    rows: int
    chosen: dict[str, int]
    metrics: dict[str, object]
    importances: list[dict[str, object]]
    mlflow: NotRequired[MlflowRecord | None]
    leaves: int
    rules: str
    model: str
    plots: list[str]
