"""Runs stages in order and writes the run summary (runs/<run id>/summary.json).

A stage is a function ``(Run) -> StageResult``. The order is the pipeline's:
generate -> ingest -> clean -> validate -> features -> analytics -> train -> predict -> report.

Each finished stage is saved at once as ``runs/<run id>/stages/<stage>[.<parts>].json``, so the
stages of one run may run in separate processes (one spark-submit per stage, as Airflow runs
them): the summary and the report read every stage saved under the run id.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from pyspark.sql import SparkSession

from deepspark.config import Config
from deepspark.errors import describe
from deepspark.tables import Tables

log = logging.getLogger(__name__)
T = TypeVar("T")


class StageFailed(RuntimeError):
    """A stage decided the run must stop (e.g. a critical validation failure)."""


@dataclass
class StageResult:
    status: str = "ok"  # ok | failed | skipped
    rows_in: int = 0
    rows_out: int = 0
    rows_quarantined: int = 0
    rows_deduplicated: int = 0
    tables: dict[str, int] = field(default_factory=dict)  # table written -> its new version
    metrics: dict[str, object] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


Step = Callable[[str, int, int], None]  # (what, done, total): progress of a long step


@dataclass
class Run:
    """What a stage gets: the config, the session, the tables and where the run writes.

    ``parts`` narrows a stage to some of its parts (``analytics``: kmeans, rules, trees), so
    they can run as separate tasks; ``on_step`` receives progress of long steps."""

    config: Config
    spark: SparkSession
    tables: Tables
    run_id: str
    results: dict[str, StageResult] = field(default_factory=dict)
    parts: tuple[str, ...] = ()
    on_step: Step | None = None

    @property
    def run_dir(self) -> Path:
        return run_dir(self.config, self.run_id)

    def step(self, what: str, done: int, total: int) -> None:
        """Report progress of a long step (epochs, datasets); a no-op without a listener."""
        if self.on_step is not None:
            self.on_step(what, done, total)

    def track(self, what: str, items: Iterable[T]) -> Iterator[T]:
        """Yield ``items``, reporting progress as each one starts and when all are done."""
        items = list(items)
        for done, item in enumerate(items):
            self.step(what, done, len(items))
            yield item
        self.step(what, len(items), len(items))


RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


def run_dir(config: Config, run_id: str) -> Path:
    """The folder of one run; the id is checked since it becomes a path."""
    if not RUN_ID.fullmatch(run_id):
        raise ValueError(f"run id {run_id!r}: expected letters, digits and . _ + - (at most 128)")
    return Path(config.run.runs_dir) / run_id


Stage = Callable[[Run], StageResult]


def stage_registry() -> dict[str, Stage]:
    """Stage name -> function, in pipeline order (imported here to keep start-up light)."""
    from deepspark.analytics.stage import analyze
    from deepspark.learning.infer import predict
    from deepspark.learning.stage import train
    from deepspark.report.summary import write_report
    from deepspark.stages.clean import clean
    from deepspark.stages.features import build_features
    from deepspark.stages.generate import generate
    from deepspark.stages.ingest import ingest
    from deepspark.stages.validate import validate

    return {
        "generate": generate,
        "ingest": ingest,
        "clean": clean,
        "validate": validate,
        "features": build_features,
        "analytics": analyze,
        "train": train,
        "predict": predict,
        "report": write_report,
    }


STAGE_NAMES = [
    "generate",
    "ingest",
    "clean",
    "validate",
    "features",
    "analytics",
    "train",
    "predict",
    "report",
]


def select_stages(only: list[str] | None = None, start: str | None = None) -> list[str]:
    """The stages a run executes, checked against the known names."""
    unknown = [s for s in (only or []) + ([start] if start else []) if s not in STAGE_NAMES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; expected some of {STAGE_NAMES}")
    if only and start:
        raise ValueError("give --only or --from, not both")
    if only:
        return [s for s in STAGE_NAMES if s in only]
    if start:
        return STAGE_NAMES[STAGE_NAMES.index(start) :]
    return list(STAGE_NAMES)


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


def run_pipeline(run: Run, stages: list[str], progress: Callable[[str, str], None] | None = None) -> Path:
    """Run ``stages`` in order, saving each result as it ends; always writes the summary (of
    every stage saved under the run id, this process's and earlier ones) and returns its path."""
    registry = stage_registry()
    started = datetime.now(UTC)
    error = None
    for name in stages:
        if progress:
            progress(name, "start")
        began = time.perf_counter()
        try:
            result = registry[name](run)
        except Exception as failure:  # recorded, then re-raised after the summary is written
            result = StageResult(status="failed", notes=[f"{type(failure).__name__}: {describe(failure)}"])
            error = failure
        result.seconds = round(time.perf_counter() - began, 3)
        run.results[name] = result
        save_result(run, name, result)
        if progress:
            progress(name, result.status)
        if error is not None:
            break
    path = write_summary(run, started)
    if error is not None:
        raise StageFailed(f"stage failed; summary at {path}") from error
    return path


RESULTS = "stages"


def save_result(run: Run, name: str, result: StageResult) -> Path:
    """Save one stage's result under the run (a rerun of the same stage and parts replaces it)."""
    folder = run.run_dir / RESULTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (".".join([name, "+".join(run.parts)] if run.parts else [name]) + ".json")
    record = {
        "stage": name,
        "parts": list(run.parts),
        "config_hash": run.config.digest(),
        "delta_engine": run.tables.engine.name,
        "finished_at": datetime.now(UTC).isoformat(),
        "result": asdict(result),
    }
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=2, default=str))
    temporary.replace(path)
    return path


def load_results(folder: Path) -> tuple[dict[str, StageResult], dict[str, str]]:
    """Every stage saved under a run folder, in pipeline order, a stage's parts merged into one
    result; and the context of the latest save (``config_hash``, ``delta_engine``)."""
    records = [json.loads(p.read_text()) for p in sorted((folder / RESULTS).glob("*.json"))]
    records.sort(key=lambda r: (STAGE_NAMES.index(r["stage"]), r["finished_at"]))
    results: dict[str, StageResult] = {}
    for record in records:
        stage, part = record["stage"], StageResult(**record["result"])
        results[stage] = _merge(results[stage], part) if stage in results else part
    latest = max(records, key=lambda r: r["finished_at"], default={})
    return results, {key: latest.get(key, "") for key in ("config_hash", "delta_engine")}


def _merge(a: StageResult, b: StageResult) -> StageResult:
    """Two parts of one stage (e.g. analytics' kmeans and rules tasks) as one result."""
    worst = max(a.status, b.status, key=["ok", "skipped", "warning", "failed"].index)
    return StageResult(
        status=worst,
        rows_in=a.rows_in + b.rows_in,
        rows_out=a.rows_out + b.rows_out,
        rows_quarantined=a.rows_quarantined + b.rows_quarantined,
        rows_deduplicated=a.rows_deduplicated + b.rows_deduplicated,
        tables={**a.tables, **b.tables},
        metrics={**a.metrics, **b.metrics},
        notes=a.notes + b.notes,
        seconds=a.seconds + b.seconds,
    )


def write_summary(run: Run, started: datetime) -> Path:
    """``summary.json`` over every stage saved under the run; failed if any of them failed."""
    run.run_dir.mkdir(parents=True, exist_ok=True)
    results, _ = load_results(run.run_dir)
    status = "failed" if any(result.status == "failed" for result in results.values()) else "ok"
    summary = {
        "run_id": run.run_id,
        "status": status,
        "config_hash": run.config.digest(),
        "delta_engine": run.tables.engine.name,
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "stages": {name: asdict(result) for name, result in results.items()},
        "config": run.config.redacted(),
    }
    path = run.run_dir / "summary.json"
    path.write_text(json.dumps(summary, indent=2, default=str))
    return path
