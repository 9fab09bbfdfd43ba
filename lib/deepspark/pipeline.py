"""The pipeline: the registry of stages, in order, and the runner that writes the run summary
(runs/<run id>/summary.json).

The order is the pipeline's:
generate -> ingest -> clean -> validate -> features -> analytics -> train -> predict -> report.
:data:`STAGES` is the one place that names them; every other list (the CLI's commands, the
tests, the Airflow DAG's check) is derived from it. What a stage gets and returns is
:mod:`deepspark.run`, which the stages import instead of this module.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from deepspark.errors import describe
from deepspark.run import Run, StageFailed, StageResult, load_results, save_result
from deepspark.stages.analytics.stage import analyze
from deepspark.stages.clean.stage import clean
from deepspark.stages.features import build_features
from deepspark.stages.generate.stage import generate
from deepspark.stages.ingest import ingest
from deepspark.stages.predict import predict
from deepspark.stages.report.stage import write_report
from deepspark.stages.train.stage import train
from deepspark.stages.validate import validate

Stage = Callable[[Run], StageResult]

STAGES: dict[str, Stage] = {
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
"""Stage name -> function, in pipeline order."""

STAGE_NAMES: tuple[str, ...] = tuple(STAGES)


def select_stages(only: list[str] | None = None, start: str | None = None) -> list[str]:
    """The stages a run executes, checked against the known names."""
    unknown = [s for s in (only or []) + ([start] if start else []) if s not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; expected some of {list(STAGE_NAMES)}")
    if only and start:
        raise ValueError("give --only or --from, not both")
    if only:
        return [s for s in STAGE_NAMES if s in only]
    if start:
        return list(STAGE_NAMES[STAGE_NAMES.index(start) :])
    return list(STAGE_NAMES)


Progress = Callable[[str, StageResult | None], None]  # (stage, None) as it starts, (stage, result) as it ends


def run_pipeline(run: Run, stages: list[str], progress: Progress | None = None) -> Path:
    """Run ``stages`` in order, saving each result as it ends; always writes the summary (of
    every stage saved under the run id, this process's and earlier ones) and returns its path."""
    run.stage_order = STAGE_NAMES
    started = datetime.now(UTC)
    error = None
    for name in stages:
        if progress:
            progress(name, None)
        began = time.perf_counter()
        try:
            result = STAGES[name](run)
        except Exception as failure:  # recorded, then re-raised after the summary is written
            result = StageResult(status="failed", notes=[f"{type(failure).__name__}: {describe(failure)}"])
            error = failure
        result.seconds = round(time.perf_counter() - began, 3)
        run.results[name] = result
        save_result(run, name, result)
        if progress:
            progress(name, result)
        if error is not None:
            break
    path = write_summary(run, started)
    if error is not None:
        raise StageFailed(f"stage failed; summary at {path}") from error
    return path


def write_summary(run: Run, started: datetime) -> Path:
    """``summary.json`` over every stage saved under the run; failed if any of them failed."""
    run.run_dir.mkdir(parents=True, exist_ok=True)
    results, _ = load_results(run.run_dir, STAGE_NAMES)
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
