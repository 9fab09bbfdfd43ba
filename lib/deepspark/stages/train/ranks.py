"""What a training rank does whichever backend runs it (``train.backend``): the job it is given,
the report it returns, and :func:`fit_rank`, the training loop both backends share.

A backend (:mod:`~deepspark.stages.train.horovod`, :mod:`~deepspark.stages.train.distribute`)
starts ``num_proc`` ranks as Spark tasks, tells each its rank, and hands :func:`fit_rank` what
differs between them: how the optimizer is wrapped, the callbacks that keep the ranks in sync,
the scope the network is built in and how each rank's batches are distributed. The rest is here:

* each rank pins itself to the GPU Spark assigned to its task (``spark.task.resource.gpu.amount``),
  or runs on CPU where there is none;
* the network is built and compiled with Adam at each epoch's rate from
  :mod:`~deepspark.stages.train.schedule` (scaled by the number of ranks, warmed up, decayed);
* with ``early_stopping``, training stops when the watched metric stops improving and ends with
  the best epoch's weights;
* every rank reads the same number of batches per epoch, so no rank waits forever;
* rank 0 alone writes checkpoints (weights and optimizer state, then ``state.json`` with the
  history), TensorBoard logs and the final model. A job started again with the same folder
  resumes from the latest checkpoint: the epoch counter continues.

Each rank returns a :class:`RankReport` per job, including a digest of its final weights: the
driver checks that every rank ended with the same weights. :func:`fit_each` trains a stage's
jobs in turn in one start of the ranks (a start costs each rank its TensorFlow and Horovod
imports), each from the seed it would start from alone, and keeps each finished job's report in
its folder: a start that fails at a later job does not lose the finished ones.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pickle
import shutil
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
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
    folder: str  # checkpoints/, tensorboard/, logs/, model.h5
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
    pid: int = field(default_factory=os.getpid)  # the rank's process: one for all of a start's jobs

    def examples_per_second(self) -> float | None:
        """This rank's steady speed: the epochs after the first (which also traces the graph)."""
        if not self.epochs:
            return None
        per_epoch = self.samples / len(self.epochs)
        steady = self.epoch_seconds[1:] or self.epoch_seconds
        return per_epoch * len(steady) / sum(steady)


@dataclass(frozen=True)
class Distribution:
    """What a backend adds to :func:`fit_rank`.

    ``optimizer`` wraps Adam (Horovod's averaging optimizer); ``callbacks`` come first, before
    the schedule and the checkpointer, so those see the ranks' averaged metrics; ``scope`` is
    entered to build and compile the network (a ``tf.distribute`` strategy's); ``batches``
    turns a rank's endless ``tf.data`` batches (given the epoch a run starts at) into what
    ``fit`` reads; ``every_rank_saves``: the strategy's collectives need every rank in each save
    (ranks other than 0 save to a scratch folder that is then deleted).
    """

    optimizer: Callable[[Any], Any] = lambda optimizer: optimizer
    callbacks: tuple[Any, ...] = ()
    scope: Callable[[], AbstractContextManager] = nullcontext
    batches: Callable[[Callable[[int, int], Any]], Any] | None = None
    every_rank_saves: bool = False


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


KEEP_FREED_MEMORY = {
    "MALLOC_MMAP_THRESHOLD_": str(256 << 20),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
    "MALLOC_TOP_PAD_": str(64 << 20),
}
"""glibc's malloc keeps what TensorFlow frees for its next step. By default each step's large
tensors are mapped and unmapped again, and a CPU rank spent a third of its time in the kernel
zeroing fresh pages (perf, the sample CNN on 2 ranks): with these its epochs took 40% less time,
the 2-rank training fixture 23% less CPU. A variable already set wins."""


def rank_environment(job: TrainingJob) -> dict[str, str]:
    """The environment each rank's process starts with: tf-keras, TensorFlow's C++ log quiet,
    freed memory kept (:data:`KEEP_FREED_MEMORY`)."""
    env = {**KEEP_FREED_MEMORY, **os.environ}
    env.update({"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": env.get("TF_CPP_MIN_LOG_LEVEL", "2")})
    if job.threads:
        env["OMP_NUM_THREADS"] = str(job.threads)
    return env


def place_rank(job: TrainingJob, tf, assigned: list[str], local_rank: int) -> str:
    """Thread counts and the GPU this rank uses (before TensorFlow starts its runtime); returns
    the device, in words."""
    if job.threads:
        tf.config.threading.set_intra_op_parallelism_threads(job.threads)
        tf.config.threading.set_inter_op_parallelism_threads(job.threads)
    gpus = tf.config.list_physical_devices("GPU")
    index, device = choose_device(assigned, len(gpus), local_rank)
    tf.config.set_visible_devices([gpus[index]] if index is not None else [], "GPU")
    if index is not None:
        tf.config.experimental.set_memory_growth(gpus[index], True)
    return device


def fit_each(
    jobs: list[TrainingJob], rank: int, size: int, device: str, distribution: Distribution
) -> list[RankReport]:
    """The jobs in turn, in this rank's one process; their reports in order, each also kept in
    its job's folder (:func:`read_reports`)."""
    from deepspark.tensors import tf_keras

    reports = []
    for job in jobs:
        if reports:
            tf_keras().backend.clear_session()  # the earlier network, its graph and layer names gone
        report = fit_rank(job, rank, size, device, distribution)
        write_report(job, report)
        reports.append(report)
    return reports


def report_file(job: TrainingJob, rank: int) -> Path:
    return Path(job.folder) / "logs" / f"rank-{rank}.report"


def write_report(job: TrainingJob, report: RankReport) -> None:
    path = report_file(job, report.rank)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(pickle.dumps(report))
    os.replace(temporary, path)  # whole or absent: a rank killed while writing leaves none


def read_reports(job: TrainingJob, size: int) -> list[RankReport] | None:
    """Every rank's report of a finished job, by rank; None unless all ``size`` are there."""
    paths = [report_file(job, rank) for rank in range(size)]
    if not all(path.is_file() for path in paths):
        return None
    return [pickle.loads(path.read_bytes()) for path in paths]


def clear_reports(job: TrainingJob) -> None:
    """Before the ranks start: no report of an earlier start is taken for one of this start."""
    for path in (Path(job.folder) / "logs").glob("rank-*.report"):
        path.unlink()


def fit_rank(job: TrainingJob, rank: int, size: int, device: str, distribution: Distribution) -> RankReport:
    """One rank's training, resumed from the job's latest checkpoint where there is one."""
    import numpy as np
    import tensorflow as tf

    from deepspark.stages.train.models import build_model
    from deepspark.stages.train.schedule import keep_best, learning_rate_at, rate_schedule
    from deepspark.tensors import tf_keras

    keras = tf_keras()
    keras.utils.set_random_seed(job.seed)  # the start it has alone; rank 0's wins anyway
    spec = job.spec
    folder = Path(job.folder)
    checkpoints = folder / "checkpoints"
    chief = rank == 0
    keras.mixed_precision.set_global_policy(spec.precision)  # mixed_float16: compile adds loss scaling
    with distribution.scope():
        model = build_model(spec, job.inputs)
        model.compile(
            optimizer=distribution.optimizer(keras.optimizers.Adam(learning_rate_at(0, spec, size))),
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

    # A rank other than 0 saves only where the backend needs every rank in a save, and then to
    # a scratch folder of its own.
    saves_to = folder if chief else folder / f".rank-{rank}" if distribution.every_rank_saves else None
    callbacks = [*distribution.callbacks, rate_schedule(keras, spec, size), *([best] if best else [])]
    if saves_to is not None:
        callbacks.append(checkpointer(keras, saves_to / "checkpoints", state, best, chief))
    if chief:
        callbacks.append(keras.callbacks.TensorBoard(str(folder / "tensorboard"), update_freq="epoch"))

    steps = job.steps_per_epoch(size)
    validation = _validation_arrays(job)
    report = RankReport(rank=rank, size=size, device=device, initial_epoch=initial_epoch)
    clock = epoch_clock(keras)
    callbacks.append(clock)
    if initial_epoch < spec.epochs and not (best and best.exhausted):

        def batches_of(shard: int, shards: int) -> Any:
            return _batches(job, shard, shards, initial_epoch, tf)

        data = distribution.batches(batches_of) if distribution.batches else batches_of(rank, size)
        history = model.fit(
            data,
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
    if saves_to is not None:
        saves_to.mkdir(parents=True, exist_ok=True)
        model.save(str(saves_to / FINAL_MODEL), include_optimizer=False)
        if not chief:
            shutil.rmtree(saves_to, ignore_errors=True)
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    report.weights_digest = digest.hexdigest()
    return report


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


def checkpointer(
    keras, folder: Path, state: dict[str, Any] | None, best: Any = None, chief: bool = True
) -> Any:
    """After each epoch: weights and optimizer state, then ``state.json`` with the epoch count,
    the checkpoint's name and the history so far. ``state.json`` is written last and atomically,
    so a crash at any point leaves a consistent checkpoint and history in force. The two latest
    checkpoints are kept, and with early stopping (``best``, after it in the callbacks) the best
    epoch's weights as ``best``, named in ``state.json``. Not ``chief``: the weights are saved
    (the collectives need it) to a scratch folder and deleted; no state is kept."""
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
            if not chief:
                shutil.rmtree(folder, ignore_errors=True)
                return
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
