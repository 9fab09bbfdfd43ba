"""The Horovod backend (``train.backend: horovod``, the default): ranks launched as Spark tasks
by ``horovod.spark.run`` over Gloo, each reading its shard of a pinned gold table through
Petastorm.

Every rank runs :func:`train_rank`: it wraps Adam in ``hvd.DistributedOptimizer`` (gradients
averaged across ranks), broadcasts rank 0's initial variables and averages the epoch metrics,
then trains as :func:`~deepspark.stages.train.ranks.fit_rank` says. One launch trains all of a
stage's jobs in turn (:func:`~deepspark.stages.train.ranks.fit_each`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from deepspark.stages.train.ranks import (
    Distribution,
    RankReport,
    TrainingJob,
    bind_cores,
    fit_each,
    place_rank,
    rank_environment,
)

log = logging.getLogger(__name__)


def assigned_gpus() -> list[str]:
    """The GPU addresses Spark gave this rank's task (empty outside Spark GPU scheduling)."""
    try:
        from horovod.spark.task import get_available_devices
    except ImportError:
        return []
    return list(get_available_devices())


def train_rank(jobs: list[TrainingJob]) -> list[RankReport]:
    """One Horovod rank's training of each job (runs in the process horovod.spark.run starts
    per task); its reports in the jobs' order."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    job = jobs[0]  # threads, cores and placement are the stage's, the same in every job
    if job.pin_cores and job.threads:  # before any thread starts: threads inherit the binding
        bind_cores(int(os.environ.get("HOROVOD_LOCAL_RANK", "0")), job.threads)
    import horovod.tensorflow.keras as hvd
    import tensorflow as tf

    hvd.init()
    device = place_rank(job, tf, assigned_gpus(), hvd.local_rank())
    distribution = Distribution(
        optimizer=hvd.DistributedOptimizer,
        callbacks=(
            hvd.callbacks.BroadcastGlobalVariablesCallback(0),
            hvd.callbacks.MetricAverageCallback(),  # before the rest: they see the ranks' averages
        ),
    )
    return fit_each(jobs, hvd.rank(), hvd.size(), device, distribution)


def launch(jobs: list[TrainingJob], num_proc: int, start_timeout: int) -> list[list[RankReport]]:
    """Run ``jobs`` in turn on ``num_proc`` Horovod ranks over Gloo, one Spark task each, started
    once; for each job, its reports by rank."""
    import horovod.spark
    import horovod.tensorflow  # noqa: F401  # see below

    # horovod.spark.run first checks that Horovod was built with Gloo in a forked child, which
    # imports horovod.tensorflow; imported here, the child finds it loaded (the driver imports
    # TensorFlow for the evaluation anyway): one TensorFlow import less, about 2 CPU-s a process.
    for job in jobs:
        Path(job.folder).mkdir(parents=True, exist_ok=True)
        log.info("training %s on %d Horovod rank(s) in %s", job.name, num_proc, job.folder)
    by_rank = horovod.spark.run(
        train_rank,
        args=(jobs,),
        num_proc=num_proc,
        start_timeout=start_timeout,
        use_gloo=True,
        env=rank_environment(jobs[0]),
        verbose=0,
    )
    by_rank.sort(key=lambda reports: reports[0].rank)
    return [list(reports) for reports in zip(*by_rank, strict=True)]
