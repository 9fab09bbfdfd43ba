"""The Horovod backend (``train.backend: horovod``, the default): ranks launched as Spark tasks
by ``horovod.spark.run`` over Gloo, each reading its shard of a pinned gold table through
Petastorm.

Every rank runs :func:`train_rank`: it wraps Adam in ``hvd.DistributedOptimizer`` (gradients
averaged across ranks), broadcasts rank 0's initial variables and averages the epoch metrics,
then trains as :func:`~deepspark.stages.train.ranks.fit_rank` says.
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
    fit_rank,
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


def train_rank(job: TrainingJob) -> RankReport:
    """One Horovod rank's training (runs in the process horovod.spark.run starts per task)."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
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
    return fit_rank(job, hvd.rank(), hvd.size(), device, distribution)


def launch(job: TrainingJob, num_proc: int, start_timeout: int) -> list[RankReport]:
    """Run ``job`` on ``num_proc`` Horovod ranks over Gloo, one Spark task each; reports by rank."""
    import horovod.spark
    import horovod.tensorflow  # noqa: F401  # see below

    # horovod.spark.run first checks that Horovod was built with Gloo in a forked child, which
    # imports horovod.tensorflow; imported here, the child finds it loaded (the driver imports
    # TensorFlow for the evaluation anyway): one TensorFlow import less, about 2 CPU-s a process.
    Path(job.folder).mkdir(parents=True, exist_ok=True)
    log.info("training %s on %d Horovod rank(s) in %s", job.name, num_proc, job.folder)
    reports = horovod.spark.run(
        train_rank,
        args=(job,),
        num_proc=num_proc,
        start_timeout=start_timeout,
        use_gloo=True,
        env=rank_environment(job),
        verbose=0,
    )
    return sorted(reports, key=lambda report: report.rank)
