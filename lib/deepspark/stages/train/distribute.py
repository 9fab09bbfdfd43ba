"""The tf.distribute backend (``train.backend: tf_distribute``): ``MultiWorkerMirroredStrategy``
workers in a Spark barrier stage, with no Horovod.

:func:`launch` runs one barrier task per rank. Each task picks a free port on its host, and
``BarrierTaskContext.allGather`` gives every task the addresses of all: rank ``i`` is the
task of partition ``i``, worker ``i`` of the ``TF_CONFIG`` cluster, worker 0 the chief. The
task then starts its rank as a process of its own (``python -m
deepspark.stages.train.distribute``: a strategy's collectives cannot be started twice in one
process, and Spark reuses its Python workers), with ``TF_CONFIG`` set and its output in
``<folder>/logs/rank-<i>.log``, and waits for it. The rank dies with its task: when Spark
kills a barrier stage (a task failed, an executor was lost), no rank is left waiting in a
collective.

The rank trains as :func:`~deepspark.stages.train.ranks.fit_rank` says, under the strategy:
gradients are summed across workers over the global batch (each rank reads ``batch_size``
rows of its own shard per step, as a Horovod rank does), variables start from the chief's,
epoch metrics are the workers' together, and every worker takes part in each save (the
others' copies go to a scratch folder).
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
from pathlib import Path

from deepspark.stages.train.ranks import (
    Distribution,
    RankReport,
    TrainingJob,
    bind_cores,
    fit_rank,
    place_rank,
    rank_environment,
    report_file,
    write_report,
)

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
GRADIENT_PACK_BYTES = 64 << 20


class RankFailedError(RuntimeError):
    """A rank's process ended with an error; the message is its last line and the log's path."""


def launch(jobs: list[TrainingJob], num_proc: int, start_timeout: int) -> list[list[RankReport]]:
    """Run each job on ``num_proc`` MultiWorkerMirroredStrategy workers, one barrier stage of
    ``num_proc`` tasks per job (a strategy's collectives serve one process's life); for each
    job, its reports by rank. Spark's barrier scheduling waits for ``num_proc`` free slots, and
    fails the stage when the cluster cannot have that many (``start_timeout`` is Horovod's
    alone)."""
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    if spark is None:
        raise RuntimeError("train.backend tf_distribute needs an active Spark session")
    trained = []
    for job in jobs:
        Path(job.folder, "logs").mkdir(parents=True, exist_ok=True)
        log.info("training %s on %d tf.distribute worker(s) in %s", job.name, num_proc, job.folder)
        env = rank_environment(job)
        tasks = spark.sparkContext.parallelize(range(num_proc), num_proc).barrier()
        reports = tasks.mapPartitions(lambda _rows, job=job, env=env: [run_rank(job, env)]).collect()
        trained.append(sorted(reports, key=lambda report: report.rank))
    return trained


def run_rank(job: TrainingJob, env: dict[str, str]) -> RankReport:
    """In a barrier task: agree on the cluster with the other tasks, then run this task's rank
    in its own process and return its report."""
    from pyspark import BarrierTaskContext

    context = BarrierTaskContext.get()
    rank = context.partitionId()
    host = context.getTaskInfos()[rank].address.rsplit(":", 1)[0]
    peers = context.allGather(f"{host}:{free_port(host)}")
    local_rank = [peer.rsplit(":", 1)[0] for peer in peers[:rank]].count(host)
    resources = context.resources()
    gpus = list(resources["gpu"].addresses) if "gpu" in resources else []
    tf_config = {"cluster": {"worker": peers}, "task": {"type": "worker", "index": rank}}
    folder = Path(job.folder)
    log_path = folder / "logs" / f"rank-{rank}.log"
    report_path = report_file(job, rank)
    report_path.unlink(missing_ok=True)
    rank_env = {
        **env,
        "TF_CONFIG": json.dumps(tf_config),
        "PYTHONPATH": os.pathsep.join(path for path in sys.path if path),  # --py-files included
    }
    order = (job, rank, len(peers), local_rank, gpus)
    with log_path.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=rank_env,
            preexec_fn=_die_with_parent,
        )
        process.communicate(pickle.dumps(order))
    if process.returncode != 0 or not report_path.is_file():
        code = process.returncode
        how = f"was killed ({signal.Signals(-code).name})" if code < 0 else f"failed: {last_line(log_path)}"
        raise RankFailedError(f"tf_distribute rank {rank} of {len(peers)} {how} (log: {log_path})")
    return pickle.loads(report_path.read_bytes())


def train_worker(job: TrainingJob, rank: int, size: int, local_rank: int, gpus: list[str]) -> RankReport:
    """One worker's training, in the process :func:`run_rank` started (``TF_CONFIG`` set)."""
    if job.pin_cores and job.threads:  # before any thread starts: threads inherit the binding
        bind_cores(local_rank, job.threads)
    import tensorflow as tf

    device = place_rank(job, tf, gpus, local_rank)
    # One pack holds every gradient of the models we ship: one all-reduce a step, not one per tensor.
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.AUTO,
        bytes_per_pack=GRADIENT_PACK_BYTES,
    )
    strategy = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if strategy.num_replicas_in_sync != size:
        raise RuntimeError(f"the strategy has {strategy.num_replicas_in_sync} replicas; expected {size}")

    def distributed(batches_of):
        # Each rank reads its own shard (row groups i % size == rank) at batch_size rows a step;
        # the strategy must not shard or rebatch it again.
        return strategy.distribute_datasets_from_function(
            lambda context: batches_of(context.input_pipeline_id, context.num_input_pipelines)
        )

    distribution = Distribution(scope=strategy.scope, batches=distributed, every_rank_saves=True)
    return fit_rank(job, rank, size, device, distribution)


def free_port(host: str) -> int:
    """A port nobody listens on at ``host`` now (the rank binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def last_line(path: Path) -> str:
    """The last line of a rank's log that says something (its exception, usually)."""
    try:
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "no output (killed?)"


def _die_with_parent() -> None:
    """In the rank's process, before it runs: a SIGKILL when its Spark task's worker ends."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def main() -> None:
    job, rank, size, local_rank, gpus = pickle.load(sys.stdin.buffer)
    write_report(job, train_worker(job, rank, size, local_rank, gpus))


if __name__ == "__main__":
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    main()
