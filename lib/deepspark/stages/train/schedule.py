"""The learning rate of each epoch, and the callbacks that apply it and keep the best weights.

The schedule (epochs count from 0, as in Keras's history):

* the base rate is ``learning_rate`` times the number of ranks (each step averages that many
  batches);
* warm-up: epoch ``e < warmup_epochs`` runs at ``learning_rate + (base - learning_rate) * e /
  warmup_epochs``, a straight line from the 1-rank rate up to the base rate;
* then the base rate, multiplied by ``decay_factor`` once for each of ``decay_epochs`` already
  reached: with ``decay_epochs: [10, 14]`` and factor 0.1, epochs 10..13 run at base/10 and
  epochs 14.. at base/100.

The rate is set at the start of each epoch and recorded in the history as ``lr``.
"""

from __future__ import annotations

from typing import Any

from deepspark.config import ModelConfig


def learning_rate_at(epoch: int, spec: ModelConfig, ranks: int) -> float:
    """The rate epoch ``epoch`` runs at (see the module's docstring)."""
    base = spec.learning_rate * ranks
    if epoch < spec.warmup_epochs:
        return spec.learning_rate + (base - spec.learning_rate) * epoch / spec.warmup_epochs
    decays = sum(1 for start in spec.decay_epochs if start <= epoch)
    return base * spec.decay_factor**decays


def rate_schedule(keras, spec: ModelConfig, ranks: int) -> Any:
    """A callback that sets each epoch's rate before it starts (and logs it as ``lr``)."""
    return keras.callbacks.LearningRateScheduler(lambda epoch, _rate: learning_rate_at(epoch, spec, ranks))


def keep_best(keras, spec: ModelConfig, history: list[dict]) -> Any:
    """Early stopping on ``spec.early_stopping.monitor``: the best epoch's weights are kept in
    memory and put back when training ends, whether it stopped early or ran every epoch.

    ``history`` holds the epochs of an earlier, interrupted run of the same job: the best of those
    counts, and its weights are loaded by the caller (see :attr:`best_epoch`). ``improved`` is true
    after an epoch that became the best, so the checkpointer can save its weights.
    """
    rule = spec.early_stopping
    better = (
        (lambda new, old: new < old - rule.min_delta)
        if rule.mode == "min"
        else (lambda new, old: new > old + rule.min_delta)
    )

    class KeepBest(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.best: float | None = None
            self.best_epoch: int | None = None
            self.weights: list | None = None
            self.improved = False
            for row in history:
                self._consider(row["epoch"], row)
            self.waited = history[-1]["epoch"] - self.best_epoch if self.best_epoch is not None else 0

        def _consider(self, epoch: int, metrics: dict) -> bool:
            value = metrics.get(rule.monitor)
            if value is None:
                seen = sorted(k for k in metrics if k not in ("epoch", "lr"))
                raise KeyError(
                    f"early_stopping.monitor = {rule.monitor!r}: not among the epoch's metrics; "
                    f"expected one of {', '.join(seen)}"
                )
            if self.best is None or better(value, self.best):
                self.best, self.best_epoch = value, epoch
                return True
            return False

        @property
        def exhausted(self) -> bool:
            """An interrupted run had already waited ``patience`` epochs: nothing is left to train."""
            return self.waited >= rule.patience

        def on_epoch_end(self, epoch: int, logs=None) -> None:
            self.improved = self._consider(epoch, logs or {})
            if self.improved:
                self.weights = self.model.get_weights()
                self.waited = 0
                return
            self.waited += 1
            if self.waited >= rule.patience:
                self.model.stop_training = True

        def on_train_end(self, logs=None) -> None:
            if self.weights is not None:
                self.model.set_weights(self.weights)

    return KeepBest()
