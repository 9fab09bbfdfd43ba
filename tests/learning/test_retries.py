"""When training starts again: the retry policy on its own, with a launcher that writes the
ranks' reports the way ranks do and then fails the way a start with a lost rank does. Real
Horovod and tf.distribute starts with a rank SIGKILLed mid-training are in test_training.py;
this is the moment they cannot hit on purpose: a rank lost after its last report."""

from __future__ import annotations

import logging

from deepspark.stages.train.ranks import RankReport, TrainingJob, read_reports, write_report
from deepspark.stages.train.stage import train_with_retries
from deepspark.tensors import InputShape

LOST_RANK = (
    "Horovod detected that one or more processes exited with non-zero status, thus causing the "
    "job to be terminated. The first process to do so was: Process name: 1 Exit code: 137"
)


def test_a_rank_lost_after_every_job_reported_ends_training_without_a_second_start(
    base_config, tmp_path, caplog
):
    config = base_config.model_copy(
        update={"train": base_config.train.model_copy(update={"attempts": 2, "num_proc": 2})}
    )
    spec = config.train.models["digits_cnn"]
    jobs = [
        TrainingJob(name, spec, InputShape("pixels", (8, 8, 1), 10), [], 64, [], 16, str(tmp_path / name))
        for name in ("first", "second")
    ]
    starts: list[list[str]] = []

    def every_job_reported_then_rank_1_lost(jobs: list[TrainingJob], num_proc: int, start_timeout: int):
        starts.append([job.name for job in jobs])
        for job in jobs:
            for rank in range(num_proc):
                write_report(job, RankReport(rank, num_proc, "CPU (no GPU)", 0, [0], weights_digest=job.name))
        raise RuntimeError(LOST_RANK)

    with caplog.at_level(logging.WARNING, logger="deepspark.stages.train.stage"):
        reports, counted = train_with_retries(jobs, config, every_job_reported_then_rank_1_lost)

    assert starts == [["first", "second"]] and counted == {"first": 1, "second": 1}
    assert reports == {job.name: read_reports(job, 2) for job in jobs}
    assert [r.weights_digest for r in reports["second"]] == ["second", "second"]
    (warning,) = caplog.messages
    assert "after every job had finished" in warning and "Exit code: 137" in warning
