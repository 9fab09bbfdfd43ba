"""Stage report: the run report, as HTML with its plots and as a Markdown twin.

Input: the stage results saved under the run (``runs/<id>/stages/``), which may come from one
process or from one spark-submit per stage. Output: ``runs/<id>/report.html`` and
``report.md``: rows per stage with a plot, row accounting, validation with a link to Data
Docs, features, segments, rules, trees, training curves, batch inference and lineage.
``deepspark report RUN_ID`` rebuilds both at any time, with no Spark session.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import markdown
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from deepspark import plots
from deepspark.config import Config
from deepspark.lineage import read_manifest
from deepspark.results import CleanCounts, TrainOutcome, TreeSummary
from deepspark.run import Run, StageResult, load_results, run_dir


@dataclass
class RunRecord:
    """What the report shows: a run's saved stage results and their context."""

    run_id: str
    run_dir: Path
    results: dict[str, StageResult]
    config_hash: str
    delta_engine: str


def load_run(config: Config, run_id: str, order: Sequence[str]) -> RunRecord:
    """A run's saved stage results, listed in ``order`` (the pipeline's)."""
    folder = run_dir(config, run_id)
    results, context = load_results(folder, order)
    if not results:
        known = sorted(p.parent.name for p in Path(config.run.runs_dir).glob("*/stages"))
        raise FileNotFoundError(
            f"run {run_id!r}: no stage results under {folder}/stages; runs in "
            f"{config.run.runs_dir}: {', '.join(known) or 'none'}"
        )
    return RunRecord(run_id, folder, results, context["config_hash"], context["delta_engine"])


def build_report(config: Config, run_id: str, order: Sequence[str]) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` for a run, its stages listed in ``order``;
    returns their paths."""
    record = load_run(config, run_id, order)
    stages = {name: result for name, result in record.results.items() if name != "report"}
    accounting = plots.plot_row_accounting(stages, record.run_dir / "report" / "rows.png")
    text = render_markdown(record, accounting)
    md_path, html_path = record.run_dir / "report.md", record.run_dir / "report.html"
    md_path.write_text(text, encoding="utf-8")
    html_path.write_text(render_html(text, f"deepspark run {run_id}"), encoding="utf-8")
    return md_path, html_path


def write_report(run: Run) -> StageResult:
    md_path, html_path = build_report(run.config, run.run_id, run.stage_order)
    return StageResult(metrics={"report": str(md_path), "html": str(html_path)})


def versions(inputs: dict[str, int]) -> str:
    """Tables as ``table@version``, comma-separated: what a model or feature set was made from."""
    return ", ".join(f"{table}@{version}" for table, version in inputs.items())


LOADER = FileSystemLoader(Path(__file__).with_name("templates"))
TEMPLATES = Environment(
    loader=LOADER,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    undefined=StrictUndefined,
    finalize=lambda value: value if isinstance(value, Markup) else escape_markdown(value),
)
TEMPLATES.filters.update(
    stem=lambda path: Path(path).stem,
    relative=lambda path, folder: str(Path(path).relative_to(folder)),
    versions=versions,
)
PAGE = Environment(
    loader=LOADER,
    autoescape=True,
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)

MARKDOWN_ESCAPES = {"\\": "\\\\", "`": "\\`", "*": "\\*", "[": "\\[", "]": "\\]", "|": "\\|"}


def escape_markdown(value: object) -> str:
    """A value as literal text in Markdown, a table cell included: no emphasis, link, code or
    column break comes from data, and HTML in it is shown, not interpreted (Python-Markdown passes
    raw HTML through to the page). Intraword underscores stay: they are no emphasis there."""
    text = html.escape(" ".join(str(value).split()) if value is not None else "None", quote=False)
    return "".join(MARKDOWN_ESCAPES.get(char, char) for char in text)


def render_html(text: str, title: str) -> str:
    """The Markdown report as one HTML page (images stay files beside it, paths relative)."""
    body = markdown.markdown(text, extensions=["tables", "fenced_code"], output_format="html")
    return PAGE.get_template("page.html.j2").render(title=title, body=Markup(body))


def render_markdown(record: RunRecord, accounting_plot: Path) -> str:
    """The report's text, from ``templates/report.md.j2``; plots are already drawn
    (``accounting_plot``: rows per stage)."""
    results = record.results
    template = TEMPLATES.get_template("report.md.j2")
    analytics = results["analytics"].metrics if "analytics" in results else {}
    trained = results["train"].metrics if "train" in results else {}
    return template.render(
        record=record,
        run_dir=record.run_dir,
        accounting_plot=str(accounting_plot),
        stage_rows=[
            [
                name,
                r.status,
                f"{r.seconds:.1f}",
                r.rows_in,
                r.rows_out,
                r.rows_quarantined,
                r.rows_deduplicated,
            ]
            for name, r in results.items()
        ],
        # A table several stages touch (silver: clean writes it, validate reads it) once, latest version.
        tables_written=list({t: v for r in results.values() for t, v in r.tables.items()}.items()),
        ingest=ingest_rows(results["ingest"].metrics) if "ingest" in results else [],
        clean=clean_rows(results["clean"].metrics) if "clean" in results else [],
        validation=validation_view(results["validate"]) if "validate" in results else None,
        features=feature_rows(results["features"].metrics) if "features" in results else [],
        kmeans=kmeans_view(analytics["kmeans"]) if analytics.get("kmeans") else None,
        rules=rules_view(analytics["rules"]) if analytics.get("rules") else None,
        trees=[tree_view(name, t) for name, t in analytics.get("trees", {}).items()],
        models=[model_view(name, m) for name, m in trained.items()],
        predictions=prediction_rows(results["predict"].metrics) if "predict" in results else [],
        lineage=lineage_rows(trained),
        notes=[(name, note) for name, r in results.items() for note in r.notes],
    )


def ingest_rows(metrics: dict) -> list[list]:
    """Per source: files landed, new and replayed, rows, ingest issues, values re-decoded."""
    rows = []
    for source, m in metrics.items():
        issues = ", ".join(f"{k} {v}" for k, v in sorted(m.get("issues", {}).items()))
        redecoded = ", ".join(f"{k} {v}" for k, v in sorted(m.get("redecoded", {}).items()))
        rows.append(
            [
                source,
                m["files_landed"],
                m["files_new"],
                m.get("files_replayed", 0),
                m["rows"],
                issues,
                redecoded,
            ]
        )
    return rows


def clean_rows(metrics: dict[str, CleanCounts]) -> list[list]:
    rows = []
    for dataset, m in metrics.items():
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(m.get("quarantine_reasons", {}).items()))
        rows.append(
            [
                dataset,
                m["rows_in"],
                m["rows_out"],
                m["rows_quarantined"],
                m["rows_deduplicated"],
                m["balanced"],
                reasons,
            ]
        )
    return rows


def validation_view(validated: StageResult) -> dict:
    """Expectations per silver dataset (the version validated, failures) and the Data Docs link."""
    metrics = {k: v for k, v in validated.metrics.items() if k != "data_docs"}
    rows = [
        [dataset, m["version"], m["expectations"], len(m["failed"]), "; ".join(m["failed"]) or "-"]
        for dataset, m in metrics.items()
    ]
    return {"rows": rows, "docs": validated.metrics.get("data_docs"), "status": validated.status}


def feature_rows(metrics: dict) -> list[list]:
    rows = []
    for name, m in metrics.items():
        reuse = "fitted" if not m["reused_model"] else "reused" if m["rewritten"] else "unchanged"
        rows.append([name, m["table"], m["version"], m["rows"], m["features"], versions(m["inputs"]), reuse])
    return rows


def kmeans_view(kmeans: dict) -> dict:
    columns = [c for c in kmeans["profiles"][0] if c.startswith("mean_")] if kmeans["profiles"] else []
    profiles = [
        [p["segment"], p["size"], f"{p['share']:.1%}", *(p[c] for c in columns)] for p in kmeans["profiles"]
    ]
    curve = [
        [c["k"], f"{c['inertia']:.1f}", "" if c["silhouette"] is None else f"{c['silhouette']:.4f}"]
        for c in kmeans["curve"]  # a fixed k is not compared by silhouette
    ]
    names = [c.removeprefix("mean_") for c in columns]
    distance = kmeans.get("silhouette_distance", "squared Euclidean")  # results saved before it was named
    return {
        **kmeans,
        "columns": names,
        "profiles": profiles,
        "curve": curve,
        "distance": distance,
        "n_init": kmeans.get("n_init", 1),
    }


def rules_view(rules: dict) -> dict:
    top = [
        [
            ", ".join(r["antecedent"]),
            ", ".join(r["consequent"]),
            f"{r['support']:.4f}",
            f"{r['confidence']:.3f}",
            f"{r['lift']:.3f}",
            f"{r['leverage']:.4f}",
            "inf" if r["conviction"] is None else f"{r['conviction']:.3f}",
        ]
        for r in rules["top_by_lift"]
    ]
    return {**rules, "top": top}


def tree_view(name: str, tree: TreeSummary) -> dict:
    rules = Path(tree["rules"]).read_text(encoding="utf-8").rstrip()
    longest = max((len(run) for run in re.findall(r"`+", rules)), default=0)
    return {
        **tree,
        "name": name,
        "scores": ", ".join(f"{k} {v}" for k, v in tree["metrics"].items() if k != "confusion"),
        "importances": [[i["feature"], i["importance"]] for i in tree["importances"]],
        "rules": rules,
        "fence": "`" * max(3, longest + 1),  # longer than any run of backticks in the rules
    }


BACKENDS = {"horovod": "Horovod", "tf_distribute": "tf.distribute"}


def model_view(name: str, m: TrainOutcome) -> dict:
    """One section per trained network: data version, ranks, held-out scores, baselines, plots."""
    how = (
        "reused (same config, data version and ranks)"
        if m["reused"]
        else f"trained on {m['ranks']} {BACKENDS[m.get('backend', 'horovod')]} rank(s), {m['device']}"
        + (f", resumed at epoch {m['resumed_from_epoch']}" if m["resumed_from_epoch"] else "")
        + (f", started {m['attempts']} times" if m.get("attempts", 1) > 1 else "")
    )
    per_class = [
        [
            c.get("name", c["class"]),
            f"{c['precision']:.3f}",
            f"{c['recall']:.3f}",
            f"{c['f1']:.3f}",
            c["support"],
        ]
        for c in m["test"].get("per_class", [])  # a regressor has no classes
    ]
    return {
        **m,
        "name": name,
        "how": how,
        "speed": f"; {m['samples_per_second']:.0f} examples/s" if m["samples_per_second"] else "",
        "majority_baseline": m.get("majority_baseline"),
        "bag_of_words_baseline": m.get("bag_of_words_baseline"),
        "mean_baseline_rmse": m.get("mean_baseline_rmse"),
        "registry_version": m.get("registry_version"),
        "per_class": per_class,
    }


def prediction_rows(metrics: dict) -> list[list]:
    rows = []
    for name, m in metrics.items():
        cells = [name, m["model"], m["model_version"], m["input"], m["output"], m["rows"]]
        if m.get("rmse") is not None:
            rows.append([*cells, f"RMSE {m['rmse']:.4g} ({m['measured_on']})"])
        elif m.get("accuracy") is not None:
            rows.append([*cells, f"accuracy {m['accuracy']:.4f} ({m['measured_on']})"])
        else:
            rows.append([*cells, "-"])
    return rows


def lineage_rows(trained: dict[str, TrainOutcome]) -> list[list]:
    """Each registered model back to its table versions, their validation runs and the config."""
    rows = []
    for name, m in trained.items():
        lineage = read_manifest(Path(m["model"]).parent) or {}
        sources = versions(lineage.get("sources", {}))
        runs = lineage.get("validation", {}).get("runs", {})
        gates = ", ".join(
            f"{t}: run {g['run_id']} ({g['expectations']} expectations, {g['critical_failed']} critical)"
            if g
            else f"{t}: no validation of this version"
            for t, g in runs.items()
        )
        rows.append(
            [f"{name} v{m.get('registry_version')}", sources, gates or "-", lineage.get("config_hash", "-")]
        )
    return rows
