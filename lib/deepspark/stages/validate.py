"""Stage validate: the Great Expectations gate over silver, before anything reads it.

Input: ``silver.<dataset>`` for each suite in ``validate.suites``. Output: Data Docs and the
GX stores under ``<data_root>/<validate.gx_dir>``, each suite's result as JSON in
``<runs_dir>/<run id>/validation/``, and one row per expectation per run in
``quality.expectation_results``. Parameters: ``validate.suites``, ``validate.stop_on_critical``.

Suites are declared in conf/ and built into GX 1.x ``ExpectationSuite`` objects; GX runs them
on the Spark DataFrame itself (its Spark execution engine computes metrics as Spark
aggregations; nothing data-sized reaches the driver beyond GX's 20-value samples). A failed
``critical`` expectation stops the run naming the expectation, column and observed value; a
failed ``warning`` is recorded in the summary and report.

A table version that the same suite has already validated is not validated again: the verdicts
of that run are kept (and stop this run too when they failed critically), and its result JSON is
copied into this run's folder. ``quality.expectation_results`` holds the run that validated it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from pyspark.sql import DataFrame

from deepspark.config import Config, did_you_mean
from deepspark.lineage import fingerprint, record_work, recorded_work
from deepspark.run import Run, StageFailed, StageResult, skipped

RESULTS = "quality.expectation_results"
DATASOURCE = "silver"


@dataclass(frozen=True)
class Outcome:
    """One expectation's verdict on one table version."""

    dataset: str
    table_version: int
    expectation: str
    column: str | None
    severity: str
    success: bool
    observed: str | None
    unexpected_count: int | None
    unexpected_percent: float | None
    element_count: int | None

    def describe(self) -> str:
        where = f"silver.{self.dataset}" + (f".{self.column}" if self.column else "")
        seen = f"observed {self.observed}" if self.observed is not None else ""
        if self.unexpected_count is not None:
            seen = f"{self.unexpected_count} unexpected values ({self.unexpected_percent:.3g}%)"
            if self.observed is not None:
                seen += f", observed {self.observed}"
        return f"{self.expectation} on {where}: {seen}"


def build_suite(config: Config, dataset: str):
    """A GX ExpectationSuite from ``validate.suites.<dataset>`` (GX needs an open context first);
    a wrong name or argument is a ConfigError naming the file and key, with the nearest name."""
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=dataset)
    for index, declared in enumerate(config.validate_.suites[dataset]):
        key = f"validate.suites.{dataset}[{index}]"
        class_name = "".join(part.capitalize() for part in declared.expectation.split("_"))
        cls = getattr(gx.expectations, class_name, None)
        if cls is None or not declared.expectation.startswith("expect_"):
            raise config.error(
                f"{key}.expectation",
                f"= {declared.expectation!r}: {did_you_mean(declared.expectation, expectation_names())}"
                "expected the snake_case name of a Great Expectations 1.x expectation, "
                "e.g. expect_column_values_to_not_be_null",
            )
        try:
            suite.add_expectation(cls(**declared.kwargs, meta={"severity": declared.severity}))
        except Exception as error:  # pydantic's ValidationError from GX, or a TypeError
            raise config.error(
                f"{key}.kwargs",
                f"= {declared.kwargs!r}: not valid for {declared.expectation}: {error}",
            ) from None
    return suite


def expectation_names() -> list[str]:
    """The snake_case names of GX's core expectations (expect_column_values_to_be_between, ...)."""
    import great_expectations as gx

    names = (re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower() for name in dir(gx.expectations))
    return [name for name in names if name.startswith("expect_")]


def open_context(root: Path):
    """The GX file project under ``root`` (created on first use), quiet: no progress bars or
    usage statistics."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    root.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(root))
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    context.variables.save()
    return context


# Counts and observed values only: GX fetches samples of each expectation's unexpected values
# with a Spark job of their own, a full scan even when there are none (a limit of 0 runs none).
COUNTS = {"result_format": "BASIC", "partial_unexpected_count": 0}
# With samples of the unexpected values and their counts, for Data Docs.
SAMPLES = {"result_format": "SUMMARY"}


def found_unexpected(validation) -> bool:
    return any((item.result or {}).get("unexpected_count") for item in validation.results)


def run_suite(context, dataset: str, suite, frame: DataFrame, run_id: str):
    """Validate one DataFrame with one suite through a checkpoint that updates Data Docs: first
    with counts only, then, where some expectation found unexpected values, again with samples
    of them under the same run identifier, which replaces the first result and its page."""
    import great_expectations as gx

    # persist=False: GX otherwise caches the whole DataFrame, every column, and never frees it.
    # At 10.1M rows that cache cost validate 9 s of its 20 (each metric reads only its columns
    # from the files instead) and held the silver tables in the heap for the stages after.
    source = context.data_sources.add_or_update_spark(name=DATASOURCE, persist=False)
    asset = next((a for a in source.assets if a.name == dataset), None) or source.add_dataframe_asset(dataset)
    batch = next((b for b in asset.batch_definitions if b.name == "all"), None)
    batch = batch or asset.add_batch_definition_whole_dataframe("all")
    suite = context.suites.add_or_update(suite)
    definition = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=dataset, data=batch, suite=suite)
    )
    identifier = gx.RunIdentifier(run_name=run_id, run_time=datetime.now(UTC))
    for result_format in (COUNTS, SAMPLES):
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(
                name=f"silver_{dataset}",
                validation_definitions=[definition],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
                result_format=result_format,
            )
        )
        result = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=identifier)
        validation = next(iter(result.run_results.values()))
        if not found_unexpected(validation):
            break
    return validation


def _dataset_metrics(version: int, found: list[Outcome]) -> dict:
    return {
        "version": version,
        "expectations": len(found),
        "failed": [o.describe() for o in found if not o.success],
    }


class ExpectationError(RuntimeError):
    """GX could not evaluate an expectation (it reports that as a failure with no values)."""


def raised_exception(item) -> str | None:
    """The message of an exception GX caught while evaluating one expectation, if any. GX 1.x
    keeps ``exception_info`` either flat or keyed by the metric that raised."""
    info = item.exception_info or {}
    entries = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    for entry in entries:
        if entry.get("raised_exception"):
            return str(entry.get("exception_message") or "no message")
    return None


def outcomes_of(validation, dataset: str, version: int) -> list[Outcome]:
    outcomes = []
    for item in validation.results:
        config, found = item.expectation_config, item.result or {}
        error = raised_exception(item)
        if error is not None:
            column = config.kwargs.get("column")
            where = f"silver.{dataset}" + (f".{column}" if column else "")
            raise ExpectationError(f"{config.type} on {where} (version {version}) could not run: {error}")
        observed = found.get("observed_value")
        outcomes.append(
            Outcome(
                dataset=dataset,
                table_version=version,
                expectation=config.type,
                column=config.kwargs.get("column"),
                severity=(config.meta or {}).get("severity", "critical"),
                success=bool(item.success),
                observed=None if observed is None else json.dumps(observed, default=str),
                unexpected_count=found.get("unexpected_count"),
                unexpected_percent=found.get("unexpected_percent"),
                element_count=found.get("element_count"),
            )
        )
    return outcomes


CHECKED = "checked"  # under gx_dir: per dataset, the last version each suite validated


def validate(run: Run) -> StageResult:
    """Each suite on its silver table's current version; a version the same suite has already
    validated keeps that run's verdicts (a rerun with nothing new cleaned opens no GX context)."""
    settings = run.config.validate_
    if not settings.suites:
        return skipped("no validate.suites in conf")
    gx_root = run.config.run.data_root / settings.gx_dir
    out_dir = run.run_dir / "validation"
    out_dir.mkdir(parents=True, exist_ok=True)
    result = StageResult()
    outcomes: list[Outcome] = []
    validated: list[Outcome] = []  # by this run: its rows in quality.expectation_results
    absent, kept = [], []
    docs_url = None
    due: dict[str, tuple[int, str]] = {}
    for dataset, declared in settings.suites.items():
        table = f"silver.{dataset}"
        if not run.tables.exists(table):  # its source has landed nothing yet
            absent.append(f"warning: {table} does not exist yet (nothing cleaned); its suite did not run")
            continue
        version = run.tables.version(table)
        identity = fingerprint(dataset, [e.model_dump(mode="json") for e in declared], version)
        done = recorded_work(run.tables, gx_root / CHECKED / dataset, identity, run.run_dir)
        if done is None:
            due[dataset] = (version, identity)
            continue
        found = [Outcome(**o) for o in done["metrics"]["outcomes"]]
        outcomes += found
        docs_url = done["metrics"]["data_docs"]
        kept.append(
            f"{table} v{version}: validated by run {done['run_id']} with this suite; its verdicts kept"
        )
        result.tables[table] = version
        result.metrics[dataset] = _dataset_metrics(version, found)

    if due:
        context = open_context(gx_root)
        suites = {d: build_suite(run.config, d) for d in due}  # every wrong key before any run
        for dataset, (version, identity) in run.track("validate (suites)", due.items()):
            table = f"silver.{dataset}"
            frame = run.tables.read(table, version=version)
            # Open every file once here (footers: a count reads no column): GX turns a read error
            # (a missing or damaged file) into an expectation failure with no values; here it
            # stops the stage naming the file. Not cached (nor by GX: run_suite): each
            # expectation reads only its columns.
            frame.count()
            validation = run_suite(context, dataset, suites[dataset], frame, run.run_id)
            path = out_dir / f"{dataset}.json"
            path.write_text(json.dumps(validation.to_json_dict(), indent=2, default=str))
            found = outcomes_of(validation, dataset, version)
            outcomes += found
            validated += found
            result.tables[table] = version
            result.metrics[dataset] = _dataset_metrics(version, found)
            docs = context.get_docs_sites_urls()
            docs_url = docs[0]["site_url"] if docs else None
            record = {"outcomes": [asdict(o) for o in found], "result": str(path), "data_docs": docs_url}
            record_work(
                gx_root / CHECKED / dataset, identity, run.run_id, run.run_dir, tables={}, metrics=record
            )

    rows = [(run.run_id, *asdict(o).values()) for o in validated]
    if rows:
        schema = (
            "run_id string, dataset string, table_version long, expectation string, column string, "
            "severity string, success boolean, observed string, unexpected_count long, "
            "unexpected_percent double, element_count long"
        )
        result.tables[RESULTS] = run.tables.write(run.spark.createDataFrame(rows, schema), RESULTS).version
    result.metrics["data_docs"] = docs_url

    critical = [o.describe() for o in outcomes if not o.success and o.severity == "critical"]
    warnings = [o.describe() for o in outcomes if not o.success and o.severity == "warning"]
    result.notes = [f"critical: {c}" for c in critical] + [f"warning: {w}" for w in warnings] + absent + kept
    if critical and settings.stop_on_critical:
        raise StageFailed("critical expectations failed: " + "; ".join(critical))
    result.status = "warning" if critical or warnings or absent else "ok"
    return result
