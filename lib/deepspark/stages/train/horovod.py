"""Distributed training: Horovod ranks launched as Spark tasks, each reading its shard of a
pinned gold table through Petastorm.

:func:`launch` hands a :class:`TrainingJob` to ``horovod.spark.run``; every rank runs
:func:`train_rank`:

* pins itself to the GPU Spark assigned to its task (``spark.task.resource.gpu.amount``), or
  runs on CPU where there is none;
* builds the network, wraps Adam in ``hvd.DistributedOptimizer``, and sets each epoch's learning
  rate from :mod:`~deepspark.stages.train.schedule` (scaled by the number of ranks, warmed up,
  decayed);
* with ``early_stopping``, stops when the watched metric stops improving and ends with the best
  epoch's weights;
* broadcasts rank 0's initial variables and averages the epoch metrics across ranks;
* reads the same number of batches per epoch on every rank, so no rank waits forever;
* rank 0 alone writes checkpoints (weights and optimizer state, then ``state.json`` with the
  history), TensorBoard logs and the final model. A job started again with the same folder resumes
  from the latest checkpoint: the epoch counter continues.

Each rank returns a :class:`RankReport`, including a digest of its final weights: the driver
checks that every rank ended with the same weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepspark.config import ModelConfig
from deepspark.tensors import InputShape

log = logging.getLogger(__name__)

STATE = "state.json"
FINAL_MODEL = "model.h5"
CHECKPOINTS_KEPT = 2


@dataclass(frozen=True)
class TrainingJob:
    """Everything a rank needs, picklable: the model's spec and where its data and outputs are."""

    name: str
    spec: ModelConfig
    inputs: InputShape
    train_files: list[str]
    train_rows: int
    validation_files: list[str]
    validation_rows: int
    folder: str  # checkpoints/, tensorboard/, model.h5
    seed: int = 42
    pool: str = "dummy"
    threads: int = 0  # TensorFlow threads per rank; 0: TensorFlow's default
    pin_cores: bool = False  # bind local rank i to its own `threads` cores

    def steps_per_epoch(self, size: int) -> int:
        return max(1, self.train_rows // (size * self.spec.batch_size))


@dataclass
class RankReport:
    rank: int
    size: int
    device: str
    initial_epoch: int
    epochs: list[int] = field(default_factory=list)  # the epochs this run trained
    history: dict[str, list[float]] = field(default_factory=dict)
    samples: int = 0  # training examples this rank processed
    epoch_seconds: list[float] = field(default_factory=list)  # each epoch's, validation included
    weights_digest: str = ""  # sha256 of the final weights: equal on every rank

    def examples_per_second(self) -> float | None:
        """This rank's steady speed: the epochs after the first (which also traces the graph)."""
        if not self.epochs:
            return None
        per_epoch = self.samples / len(self.epochs)
        steady = self.epoch_seconds[1:] or self.epoch_seconds
        return per_epoch * len(steady) / sum(steady)


def choose_device(assigned: list[str], visible_gpus: int, local_rank: int) -> tuple[int | None, str]:
    """The GPU index for this rank (None: CPU) and why.

    Spark's assignment wins; with none (local mode, no GPU scheduling) ranks share the visible
    GPUs by local rank; a GPU Spark assigned that TensorFlow cannot see falls back to CPU.
    """
    if assigned:
        index = int(assigned[0])
        if index < visible_gpus:
            return index, f"GPU {index} (assigned by Spark)"
        return None, f"CPU (Spark assigned GPU {index}; TensorFlow sees {visible_gpus} GPU(s))"
    if visible_gpus:
        index = local_rank % visible_gpus
        return index, f"GPU {index} (by local rank; Spark assigned none)"
    return None, "CPU (no GPU)"


def bind_cores(local_rank: int, count: int) -> list[int]:
    """Bind this process to ``count`` cores of its own (local rank i takes the i-th group)."""
    cores = sorted(os.sched_getaffinity(0))
    mine = cores[local_rank * count : (local_rank + 1) * count]
    if len(mine) == count:
        os.sched_setaffinity(0, mine)
        return mine
    log.warning("rank %d: %d core(s) wanted, %d available; not binding", local_rank, count, len(cores))
    return cores


def assigned_gpus() -> list[str]:
    """The GPU addresses Spark gave this rank's task (empty outside Spark GPU scheduling)."""
    try:
        from horovod.spark.task import get_available_devices
    except ImportError:
        return []
    return list(get_available_devices())


def train_rank(job: TrainingJob) -> RankReport:
    """One Horovod rank's training (runs in the process horovod.spark.run starts per task)."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    if job.pin_cores and job.threads:  # before any thread starts: threads inherit the binding
        bind_cores(int(os.environ.get("HOROVOD_LOCAL_RANK", "0")), job.threads)
    import horovod.tensorflow.keras as hvd
    import numpy as np
    import tensorflow as tf

    from deepspark.stages.train.models import build_model
    from deepspark.stages.train.schedule import keep_best, learning_rate_at, rate_schedule
    from deepspark.tensors import tf_keras

    hvd.init()
    rank, size = hvd.rank(), hvd.size()
    if job.threads:
        tf.config.threading.set_intra_op_parallelism_threads(job.threads)
        tf.config.threading.set_inter_op_parallelism_threads(job.threads)
    gpus = tf.config.list_physical_devices("GPU")
    index, device = choose_device(assigned_gpus(), len(gpus), hvd.local_rank())
    tf.config.set_visible_devices([gpus[index]] if index is not None else [], "GPU")
    if index is not None:
        tf.config.experimental.set_memory_growth(gpus[index], True)
    tf.keras.utils.set_random_seed(job.seed)  # same start everywhere; rank 0's is broadcast anyway

    keras = tf_keras()
    spec = job.spec
    folder = Path(job.folder)
    checkpoints = folder / "checkpoints"
    keras.mixed_precision.set_global_policy(spec.precision)  # mixed_float16: compile adds loss scaling
    model = build_model(spec, job.inputs)
    model.compile(
        optimizer=hvd.DistributedOptimizer(keras.optimizers.Adam(learning_rate_at(0, spec, size))),
        loss=job.inputs.loss(),
        metrics=[job.inputs.metric()],
    )
    initial_epoch = 0
    state = read_state(checkpoints)
    best = None
    if spec.early_stopping:
        best = keep_best(keras, spec, state["history"] if state else [])
        if state and state.get("best"):  # the best epoch of the interrupted run, put back at the end
            model.load_weights(str(checkpoints / state["best"]))
            best.weights = model.get_weights()
    if state is not None:
        model.load_weights(str(checkpoints / state["checkpoint"]))
        initial_epoch = state["epoch"]

    steps = job.steps_per_epoch(size)
    callbacks = [
        hvd.callbacks.BroadcastGlobalVariablesCallback(0),
        hvd.callbacks.MetricAverageCallback(),  # before the rest: they see the ranks' averages
        rate_schedule(keras, spec, size),
        *([best] if best else []),
    ]
    if rank == 0:
        callbacks += [
            checkpointer(keras, checkpoints, state, best),
            keras.callbacks.TensorBoard(str(folder / "tensorboard"), update_freq="epoch"),
        ]

    validation = _validation_arrays(job)
    report = RankReport(rank=rank, size=size, device=device, initial_epoch=initial_epoch)
    clock = epoch_clock(keras)
    callbacks.append(clock)
    if initial_epoch < spec.epochs and not (best and best.exhausted):
        history = model.fit(
            _batches(job, rank, size, initial_epoch, tf),
            steps_per_epoch=steps,
            epochs=spec.epochs,
            initial_epoch=initial_epoch,
            validation_data=validation,
            validation_batch_size=max(spec.batch_size, 256),
            callbacks=callbacks,
            verbose=0,
        )
        report.epochs = list(history.epoch)
        report.history = {k: [float(v) for v in values] for k, values in history.history.items()}
        report.samples = len(report.epochs) * steps * spec.batch_size
        report.epoch_seconds = clock.seconds
    elif best is not None and best.weights is not None:  # killed after its last epoch, before saving
        model.set_weights(best.weights)
    if rank == 0:
        model.save(str(folder / FINAL_MODEL), include_optimizer=False)
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    report.weights_digest = digest.hexdigest()
    return report


def launch(job: TrainingJob, num_proc: int, start_timeout: int) -> list[RankReport]:
    """Run ``job`` on ``num_proc`` Horovod ranks over Gloo, one Spark task each; reports by rank."""
    import horovod.spark

    Path(job.folder).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update({"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": env.get("TF_CPP_MIN_LOG_LEVEL", "2")})
    if job.threads:
        env["OMP_NUM_THREADS"] = str(job.threads)
    log.info("training %s on %d rank(s) in %s", job.name, num_proc, job.folder)
    reports = horovod.spark.run(
        train_rank,
        args=(job,),
        num_proc=num_proc,
        start_timeout=start_timeout,
        use_gloo=True,
        env=env,
        verbose=0,
    )
    return sorted(reports, key=lambda report: report.rank)


def read_state(checkpoints: Path) -> dict[str, Any] | None:
    """The latest complete checkpoint: ``{"epoch": epochs done, "checkpoint": name, "best": the
    best epoch's weights and "best_epoch" its number (early stopping; else null), "history": one
    dict of metrics per epoch done}``."""
    path = checkpoints / STATE
    return json.loads(path.read_text()) if path.is_file() else None


def _validation_arrays(job: TrainingJob) -> tuple[Any, Any] | None:
    """The whole validation split in memory: every rank scores all of it, so all agree."""
    from deepspark.stages.train.data import read_rows

    if not job.validation_files:
        return None
    columns = [job.inputs.column, "label"]
    arrays = read_rows(job.validation_files, columns, job.validation_rows, f"{job.name} validation", job.pool)
    return job.inputs.batch(arrays[job.inputs.column]), arrays["label"].astype(job.inputs.label_dtype)


def _batches(job: TrainingJob, rank: int, size: int, initial_epoch: int, tf) -> Any:
    from deepspark.stages.train.data import stream_batches

    column, inputs = job.inputs.column, job.inputs

    def generate():
        for batch in stream_batches(
            job.train_files,
            [column, "label"],
            job.spec.batch_size,
            rank=rank,
            size=size,
            seed=job.seed + initial_epoch,  # a resumed run does not replay the same order
            shuffle_buffer=job.spec.shuffle_buffer,
            pool=job.pool,
        ):
            yield inputs.batch(batch[column]), batch["label"].astype(inputs.label_dtype)

    signature = (
        tf.TensorSpec((None, *inputs.shape), tf.as_dtype(inputs.dtype)),
        tf.TensorSpec((None,), tf.as_dtype(inputs.label_dtype)),
    )
    return tf.data.Dataset.from_generator(generate, output_signature=signature).prefetch(2)


def epoch_clock(keras) -> Any:
    """A callback that times each epoch (validation included) in ``.seconds``."""

    class EpochClock(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch: int, logs=None) -> None:
            self.began = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs=None) -> None:
            self.seconds.append(time.perf_counter() - self.began)

    return EpochClock()


def checkpointer(keras, folder: Path, state: dict[str, Any] | None, best: Any = None) -> Any:
    """Rank 0's callback. After each epoch: weights and optimizer state, then ``state.json`` with
    the epoch count, the checkpoint's name and the history so far. ``state.json`` is written last
    and atomically, so a crash at any point leaves a consistent checkpoint and history in force.
    The two latest checkpoints are kept, and with early stopping (``best``, after it in the
    callbacks) the best epoch's weights as ``best``, named in ``state.json``."""
    history: list[dict] = list(state["history"]) if state else []
    best_name = state.get("best") if state else None
    best_epoch = state.get("best_epoch") if state else None

    class Checkpointer(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs=None) -> None:
            folder.mkdir(parents=True, exist_ok=True)
            name = f"epoch-{epoch + 1:04d}"
            nonlocal best_name, best_epoch
            self.model.save_weights(str(folder / name))
            if best is not None and best.improved:
                best_name, best_epoch = f"best-{epoch + 1:04d}", epoch
                self.model.save_weights(str(folder / best_name))
            history.append({"epoch": epoch, **{k: float(v) for k, v in (logs or {}).items()}})
            temporary = folder / f".{STATE}.tmp"
            record = {
                "epoch": epoch + 1,
                "checkpoint": name,
                "best": best_name,
                "best_epoch": best_epoch,
                "history": history,
            }
            temporary.write_text(json.dumps(record))
            os.replace(temporary, folder / STATE)
            names = sorted({path.name.split(".")[0] for path in folder.glob("epoch-*")})
            bests = sorted({path.name.split(".")[0] for path in folder.glob("best-*")} - {best_name})
            for old in names[:-CHECKPOINTS_KEPT] + bests:
                for path in folder.glob(f"{old}.*"):
                    path.unlink()

    return Checkpointer()
