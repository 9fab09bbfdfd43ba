"""Stage train: gold tables for the networks, distributed training, evaluation, registry.

Inputs: the ``input`` table of each ``train.datasets.<name>`` a model reads (the sample shop's:
``bronze.digits`` and ``silver.reviews``). Outputs: ``gold.<dataset>`` for each (unreadable
images to ``quarantine.rows``), one row per trained model in ``ml.models`` (and, with tracking
on, an MLflow run and registry version), one row per reuse in ``ml.model_usage``, and under
``<data_root>/models/training/<model>/<fingerprint>/`` the final model, checkpoints, TensorBoard
logs and history. Parameters: ``train.*``.

A model is identified by its fingerprint: its config, the table and Delta version it reads, the
number of ranks and the seed. A finished model with the same fingerprint is reused (registered
once, when trained; a reuse leaves its manifest alone); an unfinished one (a run that failed or
was killed) resumes from its latest checkpoint.

Every model is checked against its table before any rank starts (a mistake in the last model's
config costs no training of the first). The models to train then train in turn on one start of
the ranks (Horovod: one launch for all; tf.distribute: a barrier stage each), and each is then
evaluated and registered.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from pyspark.sql import functions as F

from deepspark.config import Config, ModelConfig
from deepspark.errors import describe
from deepspark.lineage import (
    MANIFEST,
    MODELS_TABLE,
    USAGE_TABLE,
    fingerprint,
    read_manifest,
    record_usage,
    register_model,
    registered_version,
    write_manifest,
)
from deepspark.plots import plot_confusion, plot_predictions, plot_training_curves
from deepspark.recipes import TrainingDataError
from deepspark.results import TrainOutcome
from deepspark.run import Run, StageResult, skipped
from deepspark.stages.train import distribute, horovod
from deepspark.stages.train.data import (
    PinnedTable,
    PreparedTable,
    pin_table,
    prepare_dataset,
    read_split,
    require_test_rows,
)
from deepspark.stages.train.evaluate import (
    bag_of_words_baseline,
    classification_metrics,
    headline,
    majority_baseline,
    mean_baseline,
    regression_metrics,
    summary_metrics,
)
from deepspark.stages.train.ranks import (
    FINAL_MODEL,
    RankReport,
    TrainingJob,
    clear_reports,
    read_reports,
    read_state,
)
from deepspark.tables import Tables
from deepspark.tensors import InputShape, tf_keras
from deepspark.tracking import Logged, log_model_run, mlflow_record, register_network

log = logging.getLogger(__name__)
RETRY_PAUSE_S = 2.0


class RanksDriftedError(RuntimeError):
    """Ranks ended with different weights: gradients were not averaged."""


def train(run: Run) -> StageResult:
    config = run.config
    if not config.train.models:
        return skipped("no train.models in conf")
    result = StageResult()
    prepared: dict[str, PreparedTable] = {}
    plans = []
    for name, spec in config.train.models.items():
        if spec.dataset not in prepared:
            table = prepared[spec.dataset] = prepare_dataset(run.tables, config, spec.dataset, run.run_id)
            result.tables[table.table] = table.version
            result.rows_out += table.rows
            if table.quarantined:
                result.rows_quarantined += table.quarantined
                result.status = "warning"
                what = "image(s)" if config.train.datasets[spec.dataset].kind == "images" else "row(s)"
                warning = f"{spec.dataset}: {table.quarantined} {what} could not be read; see quarantine.rows"
                result.notes.append(warning)
                result.details.append(warning)
        plans.append(plan_model(run, name, spec, prepared[spec.dataset]))
    trained = train_planned(run, plans)
    for plan in plans:
        outcome = result.metrics[plan.name] = finish_model(run, plan, *trained.get(plan.name, ([], 0)))
        line = f"{plan.name}: {headline(outcome['test'])} on {outcome['test']['rows']} rows" + (
            " (reused)"
            if outcome["reused"]
            else f" ({outcome['ranks']} {outcome['backend']} ranks, {outcome['device']}{_retried(outcome)})"
        )
        result.notes.append(line)
        result.details.append(line)
    for table in (MODELS_TABLE, USAGE_TABLE):
        if run.tables.exists(table):
            result.tables[table] = run.tables.version(table)
    return result


@dataclass(frozen=True)
class ModelPlan:
    """One model, checked and located before any rank starts: ``job`` is None when a finished
    model with its fingerprint is reused."""

    name: str
    spec: ModelConfig
    prepared: PreparedTable | None
    pinned: PinnedTable
    inputs: InputShape
    identity: str
    folder: Path
    job: TrainingJob | None


def train_model(run: Run, name: str, spec: ModelConfig, prepared: PreparedTable | None) -> TrainOutcome:
    """Train (or reuse, or resume) one model, evaluate it on the test split and register it."""
    plan = plan_model(run, name, spec, prepared)
    return finish_model(run, plan, *train_planned(run, [plan]).get(name, ([], 0)))


def plan_model(run: Run, name: str, spec: ModelConfig, prepared: PreparedTable | None) -> ModelPlan:
    """The model's pinned table, input shape and fingerprint, its config checked against them,
    and the job its ranks run (none when it is reused)."""
    config, tables = run.config, run.tables
    key = f"train.models.{name}"
    check_task_slots(run.spark, config)
    version = spec.version if spec.version is not None else tables.version(spec.table)
    pinned = pin_table(tables, spec.table, version)
    pinned.require_shards("train", config.train.num_proc)
    require_test_rows(tables, pinned, config.train.datasets[spec.dataset], config)
    inputs = input_shape(tables, pinned, spec, config, key)
    stopping = spec.early_stopping
    if stopping and stopping.monitor.startswith("val_") and not pinned.rows["validation"]:
        raise config.error(
            f"{key}.early_stopping.monitor",
            f"= {stopping.monitor!r}: {spec.table} v{version} has no validation rows; "
            f"expected train.splits.validation > 0 or a monitor of loss or {inputs.metric()}",
        )
    check_network(spec, inputs, config, key)
    backend = config.train.backend
    identity = fingerprint(
        spec.model_dump(mode="json"), spec.table, version, config.train.num_proc, config.run.seed, backend
    )
    folder = config.models_root / "training" / name / identity
    job = None
    if not (folder / FINAL_MODEL).is_file():
        job = TrainingJob(
            name=name,
            spec=spec,
            inputs=inputs,
            train_files=pinned.files["train"],
            train_rows=pinned.rows["train"],
            validation_files=pinned.files["validation"],
            validation_rows=pinned.rows["validation"],
            folder=str(folder),
            seed=config.run.seed,
            pool=config.train.reader_pool,
            threads=config.train.threads_per_rank,
            pin_cores=config.train.pin_cores,
        )
    return ModelPlan(name, spec, prepared, pinned, inputs, identity, folder, job)


def train_planned(run: Run, plans: list[ModelPlan]) -> dict[str, tuple[list[RankReport], int]]:
    """Train every planned job on one start of the ranks (more where it fails and starts again);
    for each model trained, its ranks' reports and how many starts it took part in."""
    jobs = [plan.job for plan in plans if plan.job is not None]
    if not jobs:
        return {}
    with watch_epochs(run, jobs):
        reports, starts = train_with_retries(jobs, run.config)
    for job in jobs:
        check_in_sync(reports[job.name])
    return {job.name: (reports[job.name], starts[job.name]) for job in jobs}


def finish_model(run: Run, plan: ModelPlan, reports: list[RankReport], attempts: int) -> TrainOutcome:
    """Evaluate a trained (or reused) model on the test split, plot it, and register it."""
    config, tables, backend = run.config, run.tables, run.config.train.backend
    name, spec, prepared, inputs, folder = plan.name, plan.spec, plan.prepared, plan.inputs, plan.folder
    pinned, version, identity, reused = plan.pinned, plan.pinned.version, plan.identity, plan.job is None

    # The prepared table's recipe (and class names) when the model reads the version just prepared.
    recipe = prepared.recipe() if prepared and prepared.version == version else None
    labels = [] if inputs.regression else class_names(recipe, folder, inputs.classes)
    evaluation, actual, predicted = evaluate_model(folder, pinned, inputs, config.train.reader_pool, labels)
    state = read_state(folder / "checkpoints") or {}  # rank 0's metrics per epoch, across resumed runs
    history = state.get("history", [])
    plots = run.run_dir / "train"
    curves = plot_training_curves(
        history, f"{name}: training curves", plots / f"{name}_curves.png", inputs.metric()
    )
    if inputs.regression:
        scored = plot_predictions(actual, predicted, f"{name}: test split", plots / f"{name}_predictions.png")
    else:
        title = f"{name}: test confusion"
        scored = plot_confusion(
            labels, evaluation["test"]["confusion"], title, plots / f"{name}_confusion.png"
        )
    outcome: TrainOutcome = {
        "model": str(folder / FINAL_MODEL),
        "fingerprint": identity,
        "table": spec.table,
        "table_version": version,
        "reused": reused,
        "ranks": len(reports) or None,
        "backend": backend,
        "attempts": attempts,
        "device": reports[0].device if reports else None,
        "resumed_from_epoch": reports[0].initial_epoch if reports else None,
        "epochs": len(history),
        "best_epoch": state.get("best_epoch"),
        "samples_per_second": _throughput(reports),
        "history": history,
        "plots": [str(curves), str(scored)],
        **evaluation,
    }
    # The table read, and the prepared table's own inputs when the model reads that version.
    sources = {spec.table: version, **(prepared.source if recipe else {})}
    lineage = {
        "name": name,
        "kind": spec.kind,
        "uri": outcome["model"],
        "run_id": run.run_id,
        "table_name": spec.table,
        "table_version": version,
        "sources": sources,
        "validation": validation_of(tables, sources),
        "config_hash": config.digest(),
        "fingerprint": identity,
        "metrics": {
            **summary_metrics(evaluation["test"]),
            **{k: v for k, v in evaluation.items() if k != "test"},
        },
    }
    # Registered once, by the run that trained it (or, had that run died first, by the next one);
    # a run that reuses it leaves a usage record and the manifest as it was.
    registered = registered_version(tables, name, identity)
    if registered is None:
        if not reused or not (folder / MANIFEST).is_file():
            write_manifest(folder, model_manifest(folder, lineage, spec, inputs, labels, recipe))
        logged = track_training(run, name, spec, outcome, sources, folder)
        lineage["mlflow_run_id"] = logged.run_id if logged else None
        outcome["registry_version"] = register_model(tables, lineage)
        if logged:
            logged = register_network(
                config, logged, name, outcome["registry_version"], summary_metrics(evaluation["test"])
            )
        outcome["mlflow"] = mlflow_record(logged)
    else:
        record_usage(tables, run.run_id, name, registered, identity)
        outcome["registry_version"] = registered
    return outcome


VOCABULARY = "vocabulary.json"


def track_training(
    run: Run, name: str, spec: ModelConfig, outcome: TrainOutcome, sources: dict[str, int], folder: Path
) -> Logged | None:
    """The training run in MLflow: the model's config and data as params, per-epoch metrics,
    the Delta tables it was made from as datasets, the saved model and the plots as artefacts."""
    params = {
        **spec.model_dump(mode="json"),
        "ranks": run.config.train.num_proc,
        "backend": run.config.train.backend,
        "seed": run.config.run.seed,
        "fingerprint": outcome["fingerprint"],
    }
    metrics = {
        **summary_metrics(outcome["test"]),
        "majority_baseline": outcome.get("majority_baseline"),
        "bag_of_words_baseline": outcome.get("bag_of_words_baseline"),
        "mean_baseline_rmse": outcome.get("mean_baseline_rmse"),
        "samples_per_second": outcome["samples_per_second"],
    }
    model_files = [folder / FINAL_MODEL, folder / MANIFEST, folder / VOCABULARY]
    return log_model_run(
        run.config,
        name=name,
        kind=spec.kind,
        run_id=run.run_id,
        params=params,
        metrics=metrics,
        history=outcome["history"],
        tables=run.tables,
        inputs=sources,
        artefacts={"model": model_files, "plots": [Path(p) for p in outcome["plots"]]},
    )


def model_manifest(
    folder: Path, lineage: dict, spec: ModelConfig, inputs: InputShape, labels: list[str], recipe: dict | None
) -> dict:
    """The manifest a trained model carries: its lineage, config, input shape and class names,
    and how its table was prepared (label expression, tokenizer; the vocabulary in its own file)
    so that new rows can be scored outside the pipeline."""
    manifest = {
        **lineage,
        "config": spec.model_dump(mode="json"),
        "inputs": {  # a classifier's label needs no scaling
            k: v for k, v in asdict(inputs).items() if inputs.regression or not k.startswith("label_")
        },
        "classes": labels,
    }
    if recipe is not None:
        data = {key: value for key, value in recipe.items() if key != "vocabulary"}
        if "vocabulary" in recipe:
            words = json.dumps(recipe["vocabulary"], ensure_ascii=False)
            (folder / VOCABULARY).write_text(words, encoding="utf-8")
            data["vocabulary_file"] = VOCABULARY
        manifest["data"] = data
    return manifest


@contextmanager
def watch_epochs(run: Run, jobs: list[TrainingJob], every: float = 2.0) -> Iterator[None]:
    """Report the epochs rank 0 has checkpointed of each job while training runs (the ranks are
    other processes, so the driver reads their checkpoint state)."""
    stop = threading.Event()

    def report() -> None:
        for job in jobs:
            state = read_state(Path(job.folder) / "checkpoints")
            run.step(f"train {job.name} (epochs)", state["epoch"] if state else 0, job.spec.epochs)

    def poll() -> None:
        while not stop.wait(every):
            report()

    watcher = threading.Thread(target=poll, name="watch-epochs", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
        report()  # the final count, after the ranks have ended


def input_shape(
    tables: Tables, pinned: PinnedTable, spec: ModelConfig, config: Config, key: str
) -> InputShape:
    """The example shape and class count (a regressor: the training labels' mean and deviation),
    read from the pinned table itself."""
    dataset = config.train.datasets[spec.dataset]
    frame = tables.read(pinned.table, version=pinned.version)
    images = dataset.kind == "images"
    column = {"images": "pixels", "text": "tokens", "sequences": "values"}[dataset.kind]
    needed = [column, "label"] + (["height", "width", "channels"] if images else [])
    if any(c not in frame.columns for c in needed):
        raise config.error(
            f"{key}.dataset",
            f"= {spec.dataset!r}: {pinned.table} v{pinned.version} has {frame.columns}; a {dataset.kind} "
            f"dataset's gold table has {needed} (prepare it again: {key}.version: null)",
        )
    length = F.length(column) if images else F.size(column)  # bytes | ids | values
    shape = [F.max(c).alias(c) for c in ("height", "width", "channels")] if images else []
    top_id = [F.max(F.array_max(column)).alias("top_id")] if dataset.kind == "text" else []
    trained = F.when(F.col("split") == "train", F.col("label"))
    stats = frame.agg(
        F.max("label").alias("top"),
        F.avg(trained).alias("mean"),
        F.stddev_pop(trained).alias("std"),
        F.min(length).alias("shortest"),
        F.max(length).alias("longest"),
        *shape,
        *top_id,
    ).first()
    if stats["shortest"] != stats["longest"]:
        raise TrainingDataError(
            f"{pinned.table} v{pinned.version}: '{column}' lengths vary "
            f"({stats['shortest']}..{stats['longest']})"
        )
    if stats["top"] is None:
        raise TrainingDataError(f"{pinned.table} v{pinned.version} has no rows; check {key}.dataset's input")
    head = {"task": dataset.task}
    if dataset.task == "regression":  # the network's output is scaled back by these
        head |= {"label_mean": float(stats["mean"] or 0.0), "label_std": float(stats["std"] or 1.0) or 1.0}
    classes = 0 if dataset.task == "regression" else int(stats["top"]) + 1
    if images:
        return InputShape("pixels", (stats["height"], stats["width"], stats["channels"]), classes, **head)
    if dataset.kind == "sequences":
        steps = dataset.sequences.length
        return InputShape("values", (steps, int(stats["longest"]) // steps), classes, **head)
    vocabulary = max(dataset.text.vocab_size + 2, int(stats["top_id"]) + 1)
    return InputShape("tokens", (int(stats["longest"]),), classes, vocabulary, **head)


def check_network(spec: ModelConfig, inputs: InputShape, config: Config, key: str) -> None:
    """Before any rank starts: a CNN's layers must fit the images, and a custom builder's network,
    built once here, must import, take the example shape and end in one output per class (a
    regressor: one output)."""
    if spec.kind == "cnn":
        check_cnn_fits(spec, inputs, config, key)
    if spec.kind != "custom":
        return
    from deepspark.stages.train.models import build_model

    try:
        model = build_model(spec, inputs)
    except Exception as error:  # the user's code: any failure is theirs to fix
        raise config.error(
            f"{key}.builder", f"= {spec.builder!r} failed: {type(error).__name__}: {error}"
        ) from error
    outputs = getattr(model, "output_shape", None)
    if not isinstance(outputs, tuple) or outputs[1:] != (inputs.outputs,):
        ending = (
            "one linear unit, (None, 1)" if inputs.regression else f"a softmax over (None, {inputs.classes})"
        )
        raise config.error(
            f"{key}.builder",
            f"= {spec.builder!r} returned a network with output {outputs}; expected a tf-keras model "
            f"taking {(None, *inputs.shape)} and ending in {ending}",
        )


def check_cnn_fits(spec: ModelConfig, inputs: InputShape, config: Config, key: str) -> None:
    """Refuse a CNN whose convolutions and poolings would shrink ``inputs``' images to nothing
    (TensorFlow's own error comes from every rank, as a negative dimension size)."""
    from deepspark.stages.train.models import smallest_side

    cnn = spec.cnn
    height, width = inputs.shape[:2]
    side = min(height, width)
    needed = smallest_side(len(cnn.conv), cnn.kernel_size)
    if side >= needed:
        return
    fit = max((n for n in range(1, len(cnn.conv)) if smallest_side(n, cnn.kernel_size) <= side), default=0)
    fewer = f"fewer conv layers (e.g. {cnn.conv[:fit]}), " if fit else ""
    raise config.error(
        f"{key}.cnn.conv",
        f"= {cnn.conv} with kernel_size {cnn.kernel_size} needs images of at least {needed}x{needed} "
        f"pixels; {spec.table} holds {height}x{width} ones: expected {fewer}a smaller kernel_size "
        f"or a larger train.datasets.{spec.dataset}.images.size",
    )


Launch = Callable[[list[TrainingJob], int, int], list[list[RankReport]]]
"""``(jobs, num_proc, start_timeout)``: ``num_proc`` ranks started once, training the jobs in
turn; returns each job's reports by rank."""
LAUNCHERS: dict[str, Launch] = {"horovod": horovod.launch, "tf_distribute": distribute.launch}


def train_with_retries(
    jobs: list[TrainingJob], config: Config, launch: Launch | None = None
) -> tuple[dict[str, list[RankReport]], dict[str, int]]:
    """Train the jobs on ``train.backend``'s ranks (or ``launch``'s), started once for all; when
    they fail (a lost executor, a killed rank), start them again for the jobs not finished, up to
    ``train.attempts`` times in all: each start resumes from the latest checkpoint. A failure
    after every job's ranks reported (a rank lost on its way out) ends training as finished.
    Returns each job's reports by rank, and the number of starts each took part in."""
    launch = launch or LAUNCHERS[config.train.backend]
    size = config.train.num_proc
    reports: dict[str, list[RankReport]] = {}
    starts = dict.fromkeys((job.name for job in jobs), 0)
    for attempt in range(1, config.train.attempts + 1):
        pending = [job for job in jobs if job.name not in reports]
        for job in pending:
            clear_reports(job)
            starts[job.name] += 1
        try:
            trained = launch(pending, size, config.train.start_timeout)
            reports.update(zip((job.name for job in pending), trained, strict=True))
            return reports, starts
        except Exception as error:  # a Spark job, Horovod or a rank: each fails its own way
            # The jobs that finished before the failure keep their ranks' reports.
            reports.update((job.name, done) for job in pending if (done := read_reports(job, size)))
            unfinished = [job.name for job in pending if job.name not in reports]
            why = " ".join(describe(error).split())  # one line: Horovod's message runs over four
            if not unfinished:  # a rank lost after its last report: every model is saved
                log.warning("training's ranks failed after every job had finished (%s)", why)
                return reports, starts
            if attempt == config.train.attempts:
                raise
            log.warning(
                "training %s failed (%s); starting it again from its latest checkpoint (start %d of %d)",
                ", ".join(unfinished),
                why,
                attempt + 1,
                config.train.attempts,
            )
            time.sleep(RETRY_PAUSE_S)  # the failed ranks' ports close
    raise AssertionError("unreachable: train.attempts >= 1")


def _retried(outcome: TrainOutcome) -> str:
    starts = outcome["attempts"]
    return f", started {starts} times" if starts > 1 else ""


def check_task_slots(spark, config: Config) -> None:
    """Every rank's Spark task must run at once (Horovod, a barrier stage); in local mode that is the core
    count, known up front (a cluster may add executors, so there the start timeout decides)."""
    master = spark.sparkContext.master
    slots = spark.sparkContext.defaultParallelism
    if master.startswith("local") and slots < config.train.num_proc:
        raise config.error(
            "train.num_proc",
            f"= {config.train.num_proc}: Spark {master} runs {slots} task(s) at once; "
            f"expected at most {slots} ranks",
        )


def check_in_sync(reports: list[RankReport]) -> None:
    digests = {report.rank: report.weights_digest for report in reports}
    if len(set(digests.values())) != 1:
        raise RanksDriftedError(f"ranks ended with different weights: {digests}")


def class_names(recipe: dict | None, folder: Path, classes: int) -> list[str]:
    """Each class id's name: the label values the table was prepared from, else those the model's
    manifest recorded, else the ids themselves."""
    names = (recipe or {}).get("class_names") or (read_manifest(folder) or {}).get("classes")
    return list(names) if names and len(names) == classes else [str(c) for c in range(classes)]


def evaluate_model(
    folder: Path, pinned: PinnedTable, inputs: InputShape, pool: str, names: list[str] | None = None
) -> tuple[dict, np.ndarray, np.ndarray]:
    """Test-split metrics of the saved model, with the baselines beside them (text: majority
    class and bag of words; a regressor: the training mean); and the test labels and predictions."""
    model = tf_keras().models.load_model(str(folder / FINAL_MODEL), compile=False)
    test = read_split(pinned, "test", [inputs.column, "label"], pool)
    output = model.predict(inputs.batch(test[inputs.column]), batch_size=512, verbose=0)
    if inputs.regression:
        predicted = output[:, 0]
        train = read_split(pinned, "train", ["label"], pool)
        evaluation = {
            "test": regression_metrics(test["label"], predicted),
            "mean_baseline_rmse": mean_baseline(train["label"], test["label"]),
        }
        return evaluation, test["label"], predicted
    predicted = output.argmax(axis=1)
    evaluation = {"test": classification_metrics(test["label"], predicted, inputs.classes, names)}
    if inputs.column == "tokens":
        train = read_split(pinned, "train", ["tokens", "label"], pool)
        evaluation["majority_baseline"] = majority_baseline(train["label"], test["label"])
        evaluation["bag_of_words_baseline"] = bag_of_words_baseline(
            train["tokens"], train["label"], test["tokens"], test["label"], inputs.vocabulary
        )
    return evaluation, test["label"], predicted


def validation_of(tables: Tables, sources: dict[str, int]) -> dict:
    """For each silver table a model was made from, the latest validation run of exactly that
    version: its run id, expectations and critical failures (None where no suite checked it)."""
    results = "quality.expectation_results"
    if not tables.exists(results):
        return {"table": results, "version": None, "runs": {}}
    quality = tables.read(results)
    runs: dict[str, dict | None] = {}
    for table, version in sources.items():
        layer, dataset = table.split(".")
        if layer != "silver":
            continue
        checked = quality.filter((F.col("dataset") == dataset) & (F.col("table_version") == version))
        latest = checked.agg(F.max("run_id")).first()[0]
        if latest is None:
            runs[table] = None
            continue
        verdicts = (
            checked.filter(F.col("run_id") == latest)
            .agg(
                F.count("*").alias("expectations"),
                F.sum((~F.col("success") & (F.col("severity") == "critical")).cast("int")).alias("failed"),
            )
            .first()
        )
        runs[table] = {
            "run_id": latest,
            "version": version,
            "expectations": verdicts["expectations"],
            "critical_failed": verdicts["failed"],
        }
    return {"table": results, "version": tables.version(results), "runs": runs}


def _throughput(reports: list[RankReport]) -> float | None:
    """Training examples per second, all ranks together, in the steady epochs (not the first)."""
    speeds = [report.examples_per_second() for report in reports]
    return sum(speeds) if speeds and None not in speeds else None
