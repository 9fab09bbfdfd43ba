"""Stage report: a Markdown report of the run so far (rows per stage, tables, notes).

Input: the run's stage results. Output: ``<runs_dir>/<run id>/report.md``.
"""

from __future__ import annotations

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
    notes = [f"- **{name}**: {n}" for name, r in run.results.items() for n in r.notes]
    if notes:
        lines += ["", "## Notes", "", *notes]
    return "\n".join(lines) + "\n"


def write_report(run: Run) -> StageResult:
    run.run_dir.mkdir(parents=True, exist_ok=True)
    path = run.run_dir / "report.md"
    path.write_text(render_markdown(run), encoding="utf-8")
    return StageResult(metrics={"report": str(path)})
