"""Every benchmark in one run: one JSON file and one Markdown table, machine described.

1. The tabular pipeline (ingest -> clean -> validate -> features -> analytics, ``pipeline.py``)
   at each ``--rows``, ``--runs`` fresh processes each on ``local[2]``, and on ``local[1]`` at
   each ``--speedup-rows``: min / median / max seconds per stage, rows/s, the time ratio between
   sizes against the row ratio, driver peak memory, the local[1] / local[2] speed-up, and a
   linear projection to ``--project-rows``.
2. The ratios to the engines deepspark wraps and to single-node peers, ``--runs`` times each:
   deepspark vs raw MLlib and scikit-learn / mlxtend (``analytics.py``), clean + validate vs
   clean (from 1.), Petastorm vs a raw pyarrow scan and 2 ranks vs 1 on each backend (``learning.py``),
   the Delta layer on each engine vs raw parquet (``tables_overhead.py``).
3. Each tabular stage next to the job a user would write instead, at ``--anchor-rows``
   (``anchors.py``): plain PySpark + Delta and DuckDB on the same landed files, outputs compared.

Writes ``<out>/bench-<time>.json`` and ``.md`` and copies them to ``<out>/latest.*``. Usage:

    .venv/bin/python bench/run.py [--rows 1000000 10000000] [--runs 3] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import anchors
import pipeline
from stats import json_of, spread

BENCH = Path(__file__).resolve().parent
TARGETS = {  # name -> (comparison, bound): what the issues ask of each ratio
    "time ratio / row ratio, smallest to largest size": ("<=", 1.0),
    "driver peak memory, largest / smallest size": ("<=", 1.2),
    "k-means, deepspark / MLlib": ("<=", 1.10),
    "FP-growth, deepspark / MLlib": ("<=", 1.10),
    "decision tree, deepspark / MLlib": ("<=", 1.10),
    "clean + validate / clean": ("<=", 1.25),
    "Petastorm / raw pyarrow, rows/s": (">=", 0.8),
    "Horovod 2 ranks / 1 rank, examples/s": (">=", 1.8),
    "tf_distribute 2 ranks / 1 rank, examples/s": (">=", 1.8),
    "CNN epoch wall time, Horovod 2 ranks / plain tf-keras on the same 2 cores": ("<=", 1.5),
    **{f"{stage}, deepspark / plain PySpark": ("<=", 1.3) for stage in anchors.COMPARED},
}


def machine() -> dict:
    """What the figures were measured on."""
    meminfo = Path("/proc/meminfo").read_text().split("\n")[0].split()
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if "model name" in line), "")
    java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False).stderr
    commit = subprocess.run(
        ["git", "-C", str(BENCH), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    import pyspark

    return {
        "cpu": model or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "memory_gib": round(int(meminfo[1]) / 2**20, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "java": java.splitlines()[0] if java else "?",
        "pyspark": pyspark.__version__,
        "commit": commit,
    }


def script(name: str, *args: object) -> dict:
    """``bench/<name> --json``, in a fresh process."""
    return json_of([sys.executable, str(BENCH / name), *map(str, args), "--json"], name)


def measure(args: argparse.Namespace) -> dict:
    results: dict = {"machine": machine(), "started": datetime.now(UTC).isoformat(timespec="seconds")}
    results["settings"] = {k: v for k, v in vars(args).items() if k not in ("out", "scratch")}
    runs: dict[str, dict[int, list[dict]]] = {"local[2]": {}, "local[1]": {}}
    for rows in args.rows:
        runs["local[2]"][rows] = pipeline.runs(rows, "local[2]", args.runs, args.scratch)
        if rows in args.speedup_rows:
            runs["local[1]"][rows] = pipeline.runs(rows, "local[1]", args.runs, args.scratch)
        shutil.rmtree(args.scratch / f"rows-{rows}", ignore_errors=True)
    results["pipeline"] = runs
    if not args.skip_ratios:
        sizes = ["--rows", *args.analytics_rows, "--reference-max-rows", max(args.analytics_rows)]
        results["analytics"] = script("analytics.py", *sizes, "--repeats", args.runs)
        results["learning"] = script("learning.py", "--copies", args.copies, "--repeats", args.runs)
        results["tables"] = script("tables_overhead.py", "--repeat", args.runs)
    if args.anchor_rows:
        results["anchors"] = anchors.compare(args.anchor_rows, "local[2]", args.runs, args.scratch)
        shutil.rmtree(args.scratch / f"rows-{args.anchor_rows}", ignore_errors=True)
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    return results


def stage_table(runs: list[dict]) -> dict[str, dict]:
    """Per stage (and in total): the spread of seconds over the runs."""
    names = [*pipeline.STAGES, "total"]
    seconds = {name: [] for name in names}
    for run in runs:
        for name in pipeline.STAGES:
            seconds[name].append(run["stages"][name]["seconds"])
        seconds["total"].append(sum(run["stages"][name]["seconds"] for name in pipeline.STAGES))
    return {name: spread(values) for name, values in seconds.items()}


def peak_mib(size: dict) -> float:
    """The driver's peak resident memory, Python and JVM together (medians)."""
    return size["python_peak_mib"]["median"] + size["jvm_peak_mib"]["median"]


def landed(runs: list[dict]) -> int:
    return runs[0]["landed"]


def summarize(results: dict, project_rows: int) -> dict:
    """The derived figures: per-size tables, scaling, memory, speed-up and the ratios."""
    fast = results["pipeline"]["local[2]"]
    sizes = sorted(fast, key=int)
    summary: dict = {"sizes": {}, "ratios": {}, "peers": {}}
    for rows in sizes:
        stages = stage_table(fast[rows])
        summary["sizes"][rows] = {
            "landed": landed(fast[rows]),
            "stages": stages,
            "rows_per_second": {n: landed(fast[rows]) / s["median"] for n, s in stages.items()},
            "python_peak_mib": spread([r["driver_python_peak_mib"] for r in fast[rows]]),
            "jvm_peak_mib": spread([r["driver_jvm_peak_mib"] for r in fast[rows]]),
        }
        slow = results["pipeline"]["local[1]"].get(rows)
        if slow:
            one_core = stage_table(slow)
            summary["sizes"][rows]["speedup"] = {
                n: one_core[n]["median"] / stages[n]["median"] for n in stages
            }
    if len(sizes) > 1:
        small, large = summary["sizes"][sizes[0]], summary["sizes"][sizes[-1]]
        row_ratio = large["landed"] / small["landed"]
        time_ratio = {n: large["stages"][n]["median"] / small["stages"][n]["median"] for n in small["stages"]}
        summary["scaling"] = {"row_ratio": row_ratio, "time_ratio": time_ratio}
        line = {n: fit_line(small, large, n) for n in small["stages"]}
        summary["projection"] = {
            "rows": project_rows,
            "seconds": {n: fixed + per_row * project_rows for n, (fixed, per_row) in line.items()},
        }
        summary["ratios"]["time ratio / row ratio, smallest to largest size"] = (
            time_ratio["total"] / row_ratio
        )
        summary["ratios"]["driver peak memory, largest / smallest size"] = peak_mib(large) / peak_mib(small)
    clean_validate = []
    for run in fast[sizes[-1]]:
        clean, validate = run["stages"]["clean"]["seconds"], run["stages"]["validate"]["seconds"]
        clean_validate.append((clean + validate) / clean)
    summary["ratios"]["clean + validate / clean"] = spread(clean_validate)["median"]
    if "analytics" in results:
        add_analytics(results["analytics"], summary)
    if "learning" in results:
        add_learning(results["learning"], summary)
    if "tables" in results:
        for operation in ("write", "read", "merge"):
            raw = spread(results["tables"][f"parquet {operation}"])["median"]
            for engine, label in (("spark", "delta-spark"), ("rs", "delta-rs")):
                ours = spread(results["tables"][f"{engine} {operation}"])["median"]
                summary["ratios"][f"Delta table {operation}, {label} / raw parquet"] = ours / raw
    if "anchors" in results:
        summary["anchors"] = anchors.summary(results["anchors"])
        for stage, figures in summary["anchors"].items():
            summary["ratios"][f"{stage}, deepspark / plain PySpark"] = figures["deepspark / spark"]
    return summary


def fit_line(small: dict, large: dict, stage: str) -> tuple[float, float]:
    """(seconds at no rows, seconds per row) of the straight line through the two sizes' medians."""
    a, b = small["stages"][stage]["median"], large["stages"][stage]["median"]
    per_row = (b - a) / (large["landed"] - small["landed"])
    return b - per_row * large["landed"], per_row


ANALYTICS_NAMES = {"kmeans": "k-means", "fpgrowth": "FP-growth", "tree": "decision tree"}


def add_analytics(analytics: dict, summary: dict) -> None:
    for rows, fits in analytics.items():
        for key, name in ANALYTICS_NAMES.items():
            ours, mllib = spread(fits[key]["deepspark"]), spread(fits[key]["mllib"])
            summary["ratios"][f"{name}, deepspark / MLlib"] = ours["median"] / mllib["median"]
            reference = spread(fits[key]["reference"]) if fits[key]["reference"] else None
            summary["peers"][f"{name}, {int(rows):,} rows"] = {
                "deepspark": ours,
                "mllib": mllib,
                "reference": reference,
                "reference_over_mllib": reference["median"] / mllib["median"] if reference else None,
            }


def add_learning(learning: dict, summary: dict) -> None:
    scans = {name: spread(times) for name, times in learning["scan_seconds"].items()}
    raw = scans["raw pyarrow"]["median"]
    best = min(scans["petastorm dummy"]["median"], scans["petastorm process"]["median"])
    summary["ratios"]["Petastorm / raw pyarrow, rows/s"] = raw / best
    speeds = {name: spread(values) for name, values in learning["examples_per_second"].items()}
    for backend, label in (("horovod", "Horovod"), ("tf_distribute", "tf_distribute")):
        if f"{backend} 2 ranks" in speeds:
            ratio = speeds[f"{backend} 2 ranks"]["median"] / speeds[f"{backend} 1 rank"]["median"]
            summary["ratios"][f"{label} 2 ranks / 1 rank, examples/s"] = ratio
    two = speeds["horovod 2 ranks"]["median"]
    plain = speeds.get("plain fit, 2 cores, 2 threads")
    if plain:  # same rows and epochs: the wall-time ratio is the inverse of the speeds'
        name = "CNN epoch wall time, Horovod 2 ranks / plain tf-keras on the same 2 cores"
        summary["ratios"][name] = plain["median"] / two
    summary["learning"] = {"rows": learning["rows"], "scans": scans, "speeds": speeds}


def verdict(name: str, value: float) -> str:
    if name not in TARGETS:
        return ""
    comparison, bound = TARGETS[name]
    ok = value <= bound if comparison == "<=" else value >= bound
    return f"{comparison} {bound:g}: {'met' if ok else 'missed'}"


def markdown(results: dict, summary: dict) -> str:
    m, runs = results["machine"], results["settings"]["runs"]
    head = [
        "# deepspark benchmarks",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB; {m['os']}; Python {m['python']}; "
        f"{m['java']}; pyspark {m['pyspark']}. Commit {m['commit']}; {results['started']} to "
        f"{results['finished']}. Each figure: median (min–max) of {runs} runs; each pipeline run is "
        f"a fresh process, local mode with driver memory {pipeline.DRIVER_MEMORY}.",
    ]
    parts = [head, pipeline_table(summary), ratio_table(summary)]
    if summary["peers"]:
        parts.append(peers_table(summary["peers"]))
    if "learning" in summary:
        parts.append(learning_table(summary["learning"]))
    if "anchors" in summary:
        parts.append(anchors_table(results["anchors"], summary["anchors"]))
    return "\n\n".join("\n".join(part) for part in parts) + "\n"


def pipeline_table(summary: dict) -> list[str]:
    sizes = summary["sizes"]
    largest = list(sizes)[-1]
    header = ["stage", *[f"{sizes[s]['landed']:,} rows: s" for s in sizes]]
    header.append(f"rows/s at {sizes[largest]['landed']:,}")
    if "scaling" in summary:
        header.append(f"time ratio ({summary['scaling']['row_ratio']:.2f}x rows)")
        header.append(f"{summary['projection']['rows']:,} rows: s, projected")
    one_core = [s for s in sizes if "speedup" in sizes[s]]
    header += [f"local[1] / local[2] at {sizes[s]['landed']:,}" for s in one_core]
    lines = ["## Tabular pipeline, local[2]", "", row(header), "|---" + "|---:" * (len(header) - 1) + "|"]
    for stage in [*pipeline.STAGES, "total"]:
        cells = [stage, *[fmt(sizes[s]["stages"][stage], 1) for s in sizes]]
        cells.append(f"{sizes[largest]['rows_per_second'][stage]:,.0f}")
        if "scaling" in summary:
            cells.append(f"{summary['scaling']['time_ratio'][stage]:.2f}x")
            cells.append(f"{summary['projection']['seconds'][stage]:,.0f}")
        cells += [f"{sizes[s]['speedup'][stage]:.2f}x" for s in one_core]
        lines.append(row(cells))
    memory = [
        f"{sizes[s]['landed']:,} rows: Python {sizes[s]['python_peak_mib']['median']:.0f}, "
        f"JVM {sizes[s]['jvm_peak_mib']['median']:.0f}"
        for s in sizes
    ]
    return lines + [
        "",
        "rows/s: landed rows (the pipeline's input) over the stage's median seconds. The projection "
        "is the straight line through the two measured sizes, not a measurement.",
        "",
        f"Driver peak resident memory, MiB (median): {'; '.join(memory)}.",
    ]


def ratio_table(summary: dict) -> list[str]:
    lines = ["## Ratios", "", "| ratio | value | target |", "|---|---:|---|"]
    return lines + [
        row([name, f"{value:.2f}x", verdict(name, value)]) for name, value in summary["ratios"].items()
    ]


def peers_table(peers: dict) -> list[str]:
    lines = ["## Analytics: deepspark, raw MLlib and single-node peers, seconds", ""]
    lines += [row(["fit", "deepspark", "raw MLlib", "scikit-learn / mlxtend", "peer / MLlib"])]
    lines.append("|---|---:|---:|---:|---:|")
    for name, p in peers.items():
        reference = fmt(p["reference"], 2) if p["reference"] else "–"
        over = f"{p['reference_over_mllib']:.2f}x" if p["reference"] else "–"
        lines.append(row([name, fmt(p["deepspark"], 2), fmt(p["mllib"], 2), reference, over]))
    return lines


def learning_table(learning: dict) -> list[str]:
    lines = [
        f"## Deep learning, {learning['rows']:,} training digits",
        "",
        "| measurement | value |",
        "|---|---:|",
    ]
    for name, s in learning["scans"].items():
        lines.append(row([f"scan, {name}: rows/s", f"{learning['rows'] / s['median']:,.0f}"]))
    for name, s in learning["speeds"].items():
        lines.append(row([f"train, {name}: examples/s", fmt(s, 0)]))
    return lines


def anchors_table(measured: dict, table: dict) -> list[str]:
    lines = [
        f"## Against the job a user would write instead, {measured['rows']:,} rows, seconds",
        "",
        "| stage | deepspark | plain PySpark | DuckDB | deepspark / PySpark | deepspark / DuckDB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for stage, f in table.items():
        cells = [f"{f[e]:,.1f}" if f[e] is not None else "-" for e in anchors.ENGINES]
        duckdb = f"{f['deepspark / duckdb']:.1f}x" if f["deepspark / duckdb"] is not None else "-"
        lines.append(row([stage, *cells, f"{f['deepspark / spark']:.2f}x", duckdb]))
    peaks = anchors.jvm_peaks(measured)
    lines += [
        "",
        f"Driver JVM peak: deepspark {peaks['deepspark']:,.0f} MiB, plain PySpark {peaks['spark']:,.0f} MiB.",
        "",
    ]
    lines += [f"- {'equal' if ok else 'DIFFERENT'}: {name}" for name, ok in measured["checks"].items()]
    return lines


def row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def fmt(s: dict, digits: int) -> str:
    return f"{s['median']:,.{digits}f} ({s['min']:,.{digits}f}–{s['max']:,.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--speedup-rows", type=int, nargs="*", default=[1_000_000])
    parser.add_argument("--project-rows", type=int, default=100_000_000)
    parser.add_argument("--analytics-rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--anchor-rows", type=int, default=1_000_000, help="0: no anchors")
    parser.add_argument("--copies", type=int, default=10, help="MNIST copies for the learning benchmark")
    parser.add_argument("--skip-ratios", action="store_true", help="the pipeline only")
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    parser.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()) / "deepspark-bench")
    args = parser.parse_args()

    results = measure(args)
    results["summary"] = summarize(results, args.project_rows)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    for suffix, text in [
        (".json", json.dumps(results, indent=1)),
        (".md", markdown(results, results["summary"])),
    ]:
        (args.out / f"bench-{stamp}{suffix}").write_text(text)
        (args.out / f"latest{suffix}").write_text(text)
    print(markdown(results, results["summary"]))
    print(f"written: {args.out / f'bench-{stamp}.json'} and .md")


if __name__ == "__main__":
    main()
