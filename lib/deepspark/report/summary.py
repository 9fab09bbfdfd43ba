"""Stage report: a Markdown report of the run so far (rows per stage, tables, notes).

Input: the run's stage results. Output: ``<runs_dir>/<run id>/report.md``.
"""

from __future__ import annotations

from pathlib import Path

from deepspark.pipeline import Run, StageResult


def render_markdown(run: Run) -> str:
    lines = [
        f"# deepspark run {run.run_id}",
        "",
        f"Config hash `{run.config.digest()}`, Delta engine `{run.tables.engine.name}`.",
        "",
        "| stage | status | seconds | rows in | rows out | quarantined | deduplicated |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in run.results.items():
        lines.append(
            f"| {name} | {r.status} | {r.seconds:.1f} | {r.rows_in} | {r.rows_out} | "
            f"{r.rows_quarantined} | {r.rows_deduplicated} |"
        )
    lines += ["", "## Tables written", "", "| table | version |", "|---|---:|"]
    for r in run.results.values():
        lines += [f"| {t} | {v} |" for t, v in r.tables.items()]
    clean = run.results.get("clean")
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
    features = run.results.get("features")
    if features is not None and features.metrics:
        rows = []
        for name, m in features.metrics.items():
            fitted_on = ", ".join(f"{t}@{v}" for t, v in m["inputs"].items())
            reuse = "fitted" if not m["reused_model"] else "reused" if m["rewritten"] else "unchanged"
            rows.append([name, m["table"], m["version"], m["rows"], m["features"], fitted_on, reuse])
        header = ["set", "table", "version", "rows", "features", "fitted on", "model"]
        lines += _table("Features (gold)", header, "|---|---|---:|---:|---:|---|---|", rows)
    analytics = run.results.get("analytics")
    if analytics is not None:
        lines += render_analytics(analytics.metrics, run.run_dir)
    trained = run.results.get("train")
    if trained is not None and trained.metrics:
        lines += render_training(trained.metrics, run.run_dir)
    predicted = run.results.get("predict")
    if predicted is not None and predicted.metrics:
        rows = []
        for name, m in predicted.metrics.items():
            agrees = m["accuracy_on_labelled_rows"]
            cells = [name, m["model"], m["model_version"], m["input"], m["output"], m["rows"]]
            rows.append([*cells, "-" if agrees is None else f"{agrees:.4f}"])
        header = ["scoring", "model", "version", "input", "output", "rows", "agrees with label"]
        lines += _table("Batch inference", header, "|---|---|---:|---|---|---:|---:|", rows)
    notes = [f"- **{name}**: {n}" for name, r in run.results.items() for n in r.notes]
    if notes:
        lines += ["", "## Notes", "", *notes]
    return "\n".join(lines) + "\n"


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


def _images(paths: list[str], run_dir: Path) -> list[str]:
    return [""] + [f"![{Path(p).stem}]({Path(p).relative_to(run_dir)})" for p in paths]


def write_report(run: Run) -> StageResult:
    run.run_dir.mkdir(parents=True, exist_ok=True)
    path = run.run_dir / "report.md"
    path.write_text(render_markdown(run), encoding="utf-8")
    return StageResult(metrics={"report": str(path)})
