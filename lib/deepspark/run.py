"""The run contract between the pipeline and its stages: what a stage gets (:class:`Run`), what
it returns (:class:`StageResult`), how it stops a run (:class:`StageFailed`), and where a run's
results are saved and read back.

A stage is a function ``(Run) -> StageResult``. Each finished stage is saved at once as
``runs/<run id>/stages/<stage>[.<parts>].json``, so the stages of one run may run in separate
processes (one spark-submit per stage, as Airflow runs them): the summary and the report read
every stage saved under the run id.

This module knows no stage: the stages and the pipeline (their registry) both import it.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Literal, TypeVar, get_args

from pyspark.sql import SparkSession

from deepspark.config import Config
from deepspark.tables import Tables

T = TypeVar("T")

Status = Literal["ok", "skipped", "warning", "failed"]
"""A stage's outcome, from best to worst: ``warning`` finished but something needs a look
(e.g. a validation warning), ``failed`` stopped the run."""
STATUSES: tuple[Status, ...] = get_args(Status)


class StageFailed(RuntimeError):
    """A stage decided the run must stop (e.g. a critical validation failure)."""


@dataclass
class StageResult:
    """What a stage reports: row accounting, the tables it wrote, its metrics and notes."""

    status: Status = "ok"
    rows_in: int = 0
    rows_out: int = 0
    rows_quarantined: int = 0
    rows_deduplicated: int = 0
    tables: dict[str, int] = field(default_factory=dict)  # table written -> its new version
    metrics: dict[str, object] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    details: list[str] = field(
        default_factory=list
    )  # one line per part (dataset, source), shown under the stage's
    seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"stage status {self.status!r}: expected one of {', '.join(STATUSES)}")


def skipped(reason: str) -> StageResult:
    """The result of a stage with nothing to do in this project's conf, saying why (the summary,
    the report and the console show it)."""
    return StageResult(status="skipped", notes=[reason])


Step = Callable[[str, int, int], None]  # (what, done, total): progress of a long step


@dataclass
class Run:
    """What a stage gets: the config, the session, the tables and where the run writes.

    ``parts`` narrows a stage to some of its parts (``analytics``: kmeans, rules, trees), so
    they can run as separate tasks; ``on_step`` receives progress of long steps;
    ``stage_order`` is the pipeline's order of stages, for whatever lists them (the report)."""

    config: Config
    spark: SparkSession
    tables: Tables
    run_id: str
    results: dict[str, StageResult] = field(default_factory=dict)
    parts: tuple[str, ...] = ()
    on_step: Step | None = None
    stage_order: tuple[str, ...] = ()

    @property
    def run_dir(self) -> Path:
        return run_dir(self.config, self.run_id)

    @cached_property
    def as_of(self) -> datetime:
        """The moment this run is as of: see :func:`run_as_of`."""
        return run_as_of(self.run_dir)

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


AS_OF = "as_of.json"


def run_as_of(folder: Path) -> datetime:
    """The moment a run is as of, what ``now`` means to its stages (the clean stage's ``range``
    bounds and age bands): when a stage of the run first asked, to the second, kept in the run's
    folder. Every stage of the run, in whichever process, and every rerun of the run id therefore
    turn the same rows into the same output, even across midnight."""
    path = folder / AS_OF
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        moment = datetime.now(UTC).replace(microsecond=0)
        temporary = folder / f".{AS_OF}.{uuid.uuid4().hex}"
        temporary.write_text(json.dumps({"as_of": moment.isoformat()}))
        try:  # a link appears whole, and only once: of two first stages, one moment wins
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    return datetime.fromisoformat(json.loads(path.read_text())["as_of"])


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:6]


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


def load_results(folder: Path, order: Sequence[str]) -> tuple[dict[str, StageResult], dict[str, str]]:
    """Every stage saved under a run folder, in ``order`` (the pipeline's; stages it does not name
    come last, by time), a stage's parts merged into one result; and the context of the latest
    save (``config_hash``, ``delta_engine``)."""
    records = [json.loads(p.read_text()) for p in sorted((folder / RESULTS).glob("*.json"))]
    position = {name: index for index, name in enumerate(order)}
    records.sort(key=lambda r: (position.get(r["stage"], len(position)), r["finished_at"]))
    results: dict[str, StageResult] = {}
    for record in records:
        stage, part = record["stage"], StageResult(**record["result"])
        results[stage] = _merge(results[stage], part) if stage in results else part
    latest = max(records, key=lambda r: r["finished_at"], default={})
    return results, {key: latest.get(key, "") for key in ("config_hash", "delta_engine")}


def _merge(a: StageResult, b: StageResult) -> StageResult:
    """Two parts of one stage (e.g. analytics' kmeans and rules tasks) as one result."""
    worst = max(a.status, b.status, key=STATUSES.index)
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
