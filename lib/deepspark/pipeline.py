"""Runs stages in order and writes the run summary (runs/<run id>/summary.json).

A stage is a function ``(Run) -> StageResult``. The order is the pipeline's:
generate -> ingest -> clean -> validate -> features -> analytics -> train -> predict -> report.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import SparkSession

from deepspark.config import Config
from deepspark.tables import Tables

log = logging.getLogger(__name__)


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


@dataclass
class Run:
    """What a stage gets: the config, the session, the tables and where the run writes."""

    config: Config
    spark: SparkSession
    tables: Tables
    run_id: str
    results: dict[str, StageResult] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return Path(self.config.run.runs_dir) / self.run_id


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
    """Run ``stages`` in order; always writes the summary, and returns its path."""
    registry = stage_registry()
    started = datetime.now(UTC)
    status = "ok"
    error = None
    for name in stages:
        if progress:
            progress(name, "start")
        began = time.perf_counter()
        try:
            result = registry[name](run)
        except Exception as failure:  # recorded, then re-raised after the summary is written
            result = StageResult(status="failed", notes=[f"{type(failure).__name__}: {failure}"])
            error = failure
        result.seconds = round(time.perf_counter() - began, 3)
        run.results[name] = result
        if progress:
            progress(name, result.status)
        if error is not None:
            status = "failed"
            break
    path = write_summary(run, started, status)
    if error is not None:
        raise StageFailed(f"stage failed; summary at {path}") from error
    return path


def write_summary(run: Run, started: datetime, status: str) -> Path:
    run.run_dir.mkdir(parents=True, exist_ok=True)
    summary = {
        "run_id": run.run_id,
        "status": status,
        "config_hash": run.config.digest(),
        "delta_engine": run.tables.engine.name,
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "stages": {name: asdict(result) for name, result in run.results.items()},
        "config": run.config.redacted(),
    }
    path = run.run_dir / "summary.json"
    path.write_text(json.dumps(summary, indent=2, default=str))
    return path
