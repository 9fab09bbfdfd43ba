"""A worker host lost during training, on a real standalone cluster: three 1-core workers, an
application of two executors (one rank each), and during the third epoch the worker under one
rank is SIGKILLed with everything it started (executor JVM, Python workers, the rank). Training
goes on with no manual rerun, from its latest checkpoint, on the spare worker's executor:

- horovod: ``horovod.spark.run`` fails (the lost rank's process exited);
- tf_distribute: the barrier stage fails, and Spark does not retry it ("Could not recover from
  a failed barrier ResultStage": a result stage's tasks may have had effects).

Either way ``train.attempts`` starts the ranks again, once, with a one-line warning that says
why; the epoch count continues where the checkpoint left it and the ranks end in sync."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import yaml
from deepspark.stages.train.ranks import read_state
from deepspark.tables import Tables

from tests.cluster.standalone import Standalone, descendants, standalone_cluster, submit
from tests.conftest import TEST_HMAC_KEY
from tests.learning.conftest import land_digits
from tests.small_conf import load_small_config, write_small_conf

pytestmark = pytest.mark.slow
EPOCHS = 8
KILL_AFTER = 2  # epochs checkpointed before the host goes
WHY = {  # what the retry's warning says, by backend
    "horovod": "Horovod detected that one or more processes exited with non-zero status",
    "tf_distribute": "ExecutorLostFailure",
}
TRAIN = {
    "num_proc": 2,
    "threads_per_rank": 1,
    "attempts": 2,
    "datasets": {
        "digits": {
            "kind": "images",
            "input": "bronze.digits",
            "key": "digit_id",
            "images": {"column": "pixels"},
        }
    },
    "models": {
        "tiny": {
            "kind": "cnn",
            "dataset": "digits",
            "epochs": EPOCHS,
            "batch_size": 8,
            "warmup_epochs": 0,
            "early_stopping": {"monitor": "val_accuracy", "patience": 100},
            "cnn": {"conv": [8], "dense": [16], "dropout": 0.0, "augment_shift": 0.0},
        }
    },
}


def lose_a_rank_host(cluster: Standalone, checkpoints: Path, record: dict) -> None:
    """Once ``KILL_AFTER`` epochs are checkpointed, take down a worker whose executor is running
    a rank (a Python process below it); ``record`` says which processes went, at which epoch."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        found = list(checkpoints.glob("*/checkpoints"))
        state = read_state(found[0]) if found else None
        if state and state["epoch"] >= KILL_AFTER:
            time.sleep(0.5)  # into the next epoch
            for worker in cluster.workers:  # while training, Python runs below a rank's executor only
                if any(_is_python(pid) for pid in descendants(worker.pid)):
                    record.update(epoch=state["epoch"], killed=cluster.lose_host(worker))
                    return
        time.sleep(0.1)


def _is_python(pid: int) -> bool:
    try:
        return b"python" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@pytest.mark.parametrize("backend", ["horovod", "tf_distribute"])
def test_training_outlives_a_lost_worker_host(spark, tmp_path, backend):
    conf = write_small_conf(tmp_path / "conf", train={"models": {}, "backend": backend})
    (conf / "base" / "train.yaml").write_text(yaml.safe_dump(TRAIN))  # one small model, no predict
    config = load_small_config(conf)
    land_digits(spark, Tables(spark, config), "sklearn", tmp_path / "raw")
    checkpoints = config.models_root / "training" / "tiny"

    with standalone_cluster(tmp_path / "cluster", workers=3) as cluster:
        record: dict = {}
        killer = threading.Thread(target=lose_a_rank_host, args=(cluster, checkpoints, record))
        killer.start()
        done = submit(cluster.url, "train", conf, "--run-id", "lost-host", key=TEST_HMAC_KEY)
        killer.join(timeout=60)
        log = done.stdout + done.stderr
        assert done.returncode == 0, log[-4000:]
        assert record.get("killed"), "no worker was running a rank after two epochs"
        retried = [line for line in log.splitlines() if "starting it again" in line]
        assert len(retried) == 1 and "(start 2 of 2)" in retried[0], log[-4000:]
        assert WHY[backend] in retried[0], retried
        assert {app["name"]: app["state"] for app in cluster.completed_apps()} == {
            "deepspark-train": "FINISHED"
        }

    summary = json.loads((config.run.runs_dir / "lost-host" / "summary.json").read_text())
    assert summary["stages"]["train"]["status"] == "ok"
    tiny = summary["stages"]["train"]["metrics"]["tiny"]
    assert tiny["backend"] == backend and tiny["ranks"] == 2
    assert record["epoch"] <= tiny["resumed_from_epoch"] < EPOCHS  # it resumed, and not from 0
    assert tiny["attempts"] == 2
    assert [row["epoch"] for row in tiny["history"]] == list(range(EPOCHS))
    assert tiny["test"]["accuracy"] > 0.8
