"""Stage report: the run report, as HTML with its plots and as a Markdown twin.

Input: the stage results saved under the run (``runs/<id>/stages/``), which may come from one
process or from one spark-submit per stage. Output: ``runs/<id>/report.html`` and
``report.md``: rows per stage with a plot, row accounting, validation with a link to Data
Docs, features, segments, rules, trees, training curves, batch inference and lineage.
``deepspark report RUN_ID`` rebuilds both at any time, with no Spark session.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import markdown

from deepspark import plots
from deepspark.config import Config
from deepspark.lineage import read_manifest
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


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; padding: 0 1rem;
       color: #1d232a; line-height: 1.45; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .9rem; }
th, td { border: 1px solid #c9d1d9; padding: .25rem .6rem; }
th { background: #f0f3f6; }
tr:nth-child(even) td { background: #fafbfc; }
img { max-width: 100%; margin: .5rem 0; border: 1px solid #e1e4e8; }
pre { background: #f6f8fa; padding: .8rem; overflow-x: auto; font-size: .85rem; }
h2 { border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; margin-top: 2.2rem; }
"""


def render_html(text: str, title: str) -> str:
    """The Markdown report as one HTML page (images stay files beside it, paths relative)."""
    body = markdown.markdown(text, extensions=["tables", "fenced_code"], output_format="html")
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n"
        f"<body>\n{body}\n</body>\n</html>\n"
    )


def render_markdown(record: RunRecord, accounting_plot: Path) -> str:
    """The report's text; plots are already drawn (``accounting_plot``: rows per stage)."""
    results = record.results
    lines = [
        f"# deepspark run {record.run_id}",
        "",
        f"Config hash `{record.config_hash}`, Delta engine `{record.delta_engine}`.",
        "",
        "| stage | status | seconds | rows in | rows out | quarantined | deduplicated |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r.status} | {r.seconds:.1f} | {r.rows_in} | {r.rows_out} | "
            f"{r.rows_quarantined} | {r.rows_deduplicated} |"
        )
    lines += _images([str(accounting_plot)], record.run_dir)
    # A table several stages touch (silver: clean writes it, validate reads it) once, latest version.
    tables = {table: version for r in results.values() for table, version in r.tables.items()}
    lines += ["", "## Tables written", "", "| table | version |", "|---|---:|"]
    lines += [f"| {table} | {version} |" for table, version in tables.items()]
    clean = results.get("clean")
    if clean is not None:
        lines += [
            "",
            "## Row accounting (clean)",
            "",
            "| dataset | in | silver | quarantined | deduplicated | balanced | reasons |",
            "|---|---:|---:|---:|---:|---|---|",
        ]
        for dataset, m in clean.metrics.items():
            reasons = ", ".join(f"{k} {v}" for k, v in sorted(m.get("quarantine_reasons", {}).items()))
            lines.append(
                f"| {dataset} | {m['rows_in']} | {m['rows_out']} | {m['rows_quarantined']} | "
                f"{m['rows_deduplicated']} | {m['balanced']} | {reasons} |"
            )
    validated = results.get("validate")
    if validated is not None:
        lines += render_validation(validated)
    features = results.get("features")
    if features is not None and features.metrics:
        rows = []
        for name, m in features.metrics.items():
            fitted_on = ", ".join(f"{t}@{v}" for t, v in m["inputs"].items())
            reuse = "fitted" if not m["reused_model"] else "reused" if m["rewritten"] else "unchanged"
            rows.append([name, m["table"], m["version"], m["rows"], m["features"], fitted_on, reuse])
        header = ["set", "table", "version", "rows", "features", "fitted on", "model"]
        lines += _table("Features (gold)", header, "|---|---|---:|---:|---:|---|---|", rows)
    analytics = results.get("analytics")
    if analytics is not None:
        lines += render_analytics(analytics.metrics, record.run_dir)
    trained = results.get("train")
    if trained is not None and trained.metrics:
        lines += render_training(trained.metrics, record.run_dir)
    predicted = results.get("predict")
    if predicted is not None and predicted.metrics:
        rows = []
        for name, m in predicted.metrics.items():
            agrees = m["accuracy_on_labelled_rows"]
            cells = [name, m["model"], m["model_version"], m["input"], m["output"], m["rows"]]
            rows.append([*cells, "-" if agrees is None else f"{agrees:.4f}"])
        header = ["scoring", "model", "version", "input", "output", "rows", "agrees with label"]
        lines += _table("Batch inference", header, "|---|---|---:|---|---|---:|---:|", rows)
    if trained is not None and trained.metrics:
        lines += render_lineage(trained.metrics)
    notes = [f"- **{name}**: {n}" for name, r in results.items() for n in r.notes]
    if notes:
        lines += ["", "## Notes", "", *notes]
    return "\n".join(lines) + "\n"


def render_validation(validated: StageResult) -> list[str]:
    """Expectations per silver dataset (the version validated, failures) and the Data Docs link."""
    metrics = {k: v for k, v in validated.metrics.items() if k != "data_docs"}
    rows = [
        [dataset, m["version"], m["expectations"], len(m["failed"]), "; ".join(m["failed"]) or "-"]
        for dataset, m in metrics.items()
    ]
    header = ["dataset", "silver version", "expectations", "failed", "failures"]
    lines = _table("Validation (Great Expectations)", header, "|---|---:|---:|---:|---|", rows)
    docs = validated.metrics.get("data_docs")
    if docs:
        lines += ["", f"Status **{validated.status}**. Data Docs: [{docs}]({docs})"]
    return lines


def render_lineage(trained: dict) -> list[str]:
    """Each registered model back to its table versions, their validation runs and the config."""
    rows = []
    for name, m in trained.items():
        lineage = read_manifest(Path(m["model"]).parent) or {}
        sources = ", ".join(f"{t}@{v}" for t, v in lineage.get("sources", {}).items())
        runs = lineage.get("validation", {}).get("runs", {})
        gates = ", ".join(
            f"{t}: run {g['run_id']} ({g['expectations']} expectations, {g['critical_failed']} critical)"
            if g
            else f"{t}: no validation of this version"
            for t, g in runs.items()
        )
        model = f"{name} v{m['registry_version']}"
        rows.append([model, sources, gates or "-", lineage.get("config_hash", "-")])
    header = ["model", "trained on", "validated by", "config hash"]
    return _table("Lineage", header, "|---|---|---|---|", rows)


def render_analytics(metrics: dict, run_dir: Path) -> list[str]:
    """Report sections for the segments, rules and trees, with their plots (paths relative to the
    report, which sits in the run folder)."""
    lines: list[str] = []
    kmeans = metrics.get("kmeans")
    if kmeans:
        columns = [c for c in kmeans["profiles"][0] if c.startswith("mean_")] if kmeans["profiles"] else []
        lines += [
            "",
            "## Segments (k-means)",
            "",
            f"k = {kmeans['k']} (silhouette {kmeans['silhouette']}, inertia {kmeans['inertia']:.1f}), "
            f"fitted on {_inputs(kmeans)}.",
            "",
            "| segment | size | share | " + " | ".join(c.removeprefix("mean_") for c in columns) + " |",
            "|---:|---:|---:|" + "---:|" * len(columns),
        ]
        for p in kmeans["profiles"]:
            lines.append(
                f"| {p['segment']} | {p['size']} | {p['share']:.1%} | "
                + " | ".join(str(p[c]) for c in columns)
                + " |"
            )
        if len(kmeans["curve"]) > 1:
            lines += ["", "| k | inertia | silhouette |", "|---:|---:|---:|"]
            lines += [f"| {c['k']} | {c['inertia']:.1f} | {c['silhouette']:.4f} |" for c in kmeans["curve"]]
        lines += _images(kmeans["plots"], run_dir)
    rules = metrics.get("rules")
    if rules:
        lines += [
            "",
            "## Association rules (FP-growth)",
            "",
            f"{rules['baskets']} baskets from {_inputs(rules)}: {rules['itemsets']} frequent itemsets "
            f"(guard bound {rules['itemset_bound']}), {rules['rules']} rules. Top by lift:",
            "",
            "| if | then | support | confidence | lift | leverage | conviction |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for r in rules["top_by_lift"]:
            conviction = "inf" if r["conviction"] is None else f"{r['conviction']:.3f}"
            lines.append(
                f"| {', '.join(r['antecedent'])} | {', '.join(r['consequent'])} | {r['support']:.4f} | "
                f"{r['confidence']:.3f} | {r['lift']:.3f} | {r['leverage']:.4f} | {conviction} |"
            )
        lines += _images(rules["plots"], run_dir)
    for name, t in metrics.get("trees", {}).items():
        scores = ", ".join(f"{k} {v}" for k, v in t["metrics"].items() if k != "confusion")
        lines += [
            "",
            f"## Decision tree: {name} ({t['kind']}, {t['impurity']})",
            "",
            f"Label `{t['label']}` from {_inputs(t)}; {t['rows']} rows; chosen max_depth "
            f"{t['chosen']['max_depth']}, min_instances_per_node {t['chosen']['min_instances_per_node']}; "
            f"held-out {scores}.",
            "",
            "| feature | importance |",
            "|---|---:|",
            *[f"| {i['feature']} | {i['importance']} |" for i in t["importances"]],
            "",
            "```",
            Path(t["rules"]).read_text(encoding="utf-8").rstrip(),
            "```",
        ]
        lines += _images(t["plots"], run_dir)
    return lines


def render_training(metrics: dict, run_dir: Path) -> list[str]:
    """One section per trained network: data version, ranks, held-out scores, baselines, plots."""
    lines: list[str] = []
    for name, m in metrics.items():
        test = m["test"]
        how = (
            "reused (same config, data version and ranks)"
            if m["reused"]
            else f"trained on {m['ranks']} Horovod rank(s), {m['device']}"
            + (f", resumed at epoch {m['resumed_from_epoch']}" if m["resumed_from_epoch"] else "")
        )
        speed = f"; {m['samples_per_second']:.0f} examples/s" if m["samples_per_second"] else ""
        lines += [
            "",
            f"## Deep learning: {name}",
            "",
            f"`{m['table']}`@{m['table_version']}, {m['epochs']} epochs, {how}{speed}. "
            f"Registered as version {m['registry_version']} in `ml.models`.",
            "",
            f"Test accuracy **{test['accuracy']:.4f}** on {test['rows']} held-out rows, "
            f"macro F1 {test['macro_f1']:.4f}.",
        ]
        if "majority_baseline" in m:
            lines.append(
                f"Baselines on the same split: majority class {m['majority_baseline']:.4f}, "
                f"bag-of-words logistic regression {m['bag_of_words_baseline']:.4f}."
            )
        lines += ["", "| class | precision | recall | F1 | support |", "|---:|---:|---:|---:|---:|"]
        lines += [
            f"| {c['class']} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |"
            for c in test["per_class"]
        ]
        lines += _images(m["plots"], run_dir)
    return lines


def _table(title: str, header: list[str], alignment: str, rows: list[list]) -> list[str]:
    """A report section holding one Markdown table."""
    return ["", f"## {title}", "", _row(header), alignment, *[_row(cells) for cells in rows]]


def _row(cells: list) -> str:
    """One Markdown table row."""
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def _inputs(metrics: dict) -> str:
    return ", ".join(f"{table}@{version}" for table, version in metrics["inputs"].items())


def _images(paths: list[str], folder: Path) -> list[str]:
    return [""] + [f"![{Path(p).stem}]({Path(p).relative_to(folder)})" for p in paths]
