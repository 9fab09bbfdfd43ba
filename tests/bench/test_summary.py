"""The benchmark report's arithmetic (bench/run.py) on made-up runs: scaling, projection,
speed-up, memory and verdicts. The measuring itself is bench/, never timed in tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import run as bench  # noqa: E402


def made_up_run(rows: int, master_factor: float, python_mib: int, jvm_mib: int) -> dict:
    """Each stage takes 2 s plus 1 s per million landed rows, times ``master_factor``."""
    seconds = (2 + rows / 1e6) * master_factor
    return {
        "landed": rows,
        "stages": {name: {"seconds": seconds, "rows_in": rows} for name in bench.pipeline.STAGES},
        "driver_python_peak_mib": python_mib,
        "driver_jvm_peak_mib": jvm_mib,
    }


@pytest.fixture
def results() -> dict:
    return {
        "pipeline": {
            "local[2]": {
                1_000_000: [made_up_run(1_000_000, 1.0, 400, 2000 + i) for i in range(3)],
                10_000_000: [made_up_run(10_000_000, 1.0, 400, 2600) for _ in range(3)],
            },
            "local[1]": {1_000_000: [made_up_run(1_000_000, 1.8, 400, 2000) for _ in range(3)]},
        }
    }


def test_scaling_projection_speedup_and_memory(results):
    summary = bench.summarize(results, project_rows=100_000_000)
    stages = len(bench.pipeline.STAGES)
    assert summary["sizes"][1_000_000]["stages"]["total"]["median"] == pytest.approx(3 * stages)
    assert summary["scaling"]["row_ratio"] == 10
    assert summary["scaling"]["time_ratio"]["clean"] == pytest.approx(12 / 3)
    # On the straight line: 2 s + 100 s at 100M rows.
    assert summary["projection"]["seconds"]["ingest"] == pytest.approx(102)
    assert summary["sizes"][1_000_000]["speedup"]["total"] == pytest.approx(1.8)
    assert summary["sizes"][10_000_000]["rows_per_second"]["ingest"] == pytest.approx(10_000_000 / 12)
    assert summary["ratios"]["driver peak memory, largest / smallest size"] == pytest.approx(3000 / 2401)
    assert summary["ratios"]["time ratio / row ratio, smallest to largest size"] == pytest.approx(0.4)
    assert summary["ratios"]["clean + validate / clean"] == pytest.approx(2.0)


def test_verdicts_and_markdown(results):
    summary = bench.summarize(results, project_rows=100_000_000)
    assert bench.verdict("clean + validate / clean", 2.0) == "<= 1.25: missed"
    assert bench.verdict("Horovod 2 ranks / 1 rank, examples/s", 1.9) == ">= 1.8: met"
    results |= {"machine": bench.machine(), "settings": {"runs": 3}, "started": "s", "finished": "f"}
    text = bench.markdown(results, summary)
    assert "| total | 15.0 (15.0–15.0) | 60.0 (60.0–60.0) | 166,667 | 4.00x | 510 | 1.80x |" in text
    assert "| clean + validate / clean | 2.00x | <= 1.25: missed |" in text


def test_anchor_ratios_per_stage_with_no_duckdb_figure_where_duckdb_has_no_such_stage():
    stages = bench.anchors.COMPARED
    single_node = {"ingest": 1.0, "clean": 2.0, "features": 0.5}  # DuckDB cleans and aggregates only
    measured = {
        "rows": 1_000_000,
        "runs": {
            "deepspark": [
                {"seconds": dict.fromkeys(stages, 13.0), "driver_jvm_peak_mib": peak}
                for peak in (3000, 3100, 5000)
            ],
            "spark": [
                {"seconds": dict.fromkeys(stages, 10.0), "driver_jvm_peak_mib": 4000},
                {"seconds": dict.fromkeys(stages, 11.0), "driver_jvm_peak_mib": 4200},
            ],
            "duckdb": [{"seconds": single_node}],
        },
        "checks": {"silver.orders: plain PySpark = deepspark": True, "rules: plain MLlib = deepspark": False},
    }
    table = bench.anchors.summary(measured)
    assert list(table) == stages
    assert table["clean"]["deepspark / spark"] == pytest.approx(13.0 / 10.5)
    assert table["clean"]["deepspark / duckdb"] == pytest.approx(6.5)
    assert table["validate"]["duckdb"] is None and table["validate"]["deepspark / duckdb"] is None
    text = "\n".join(bench.anchors_table(measured, table))
    assert "| validate | 13.0 | 10.5 | - | 1.24x | - |" in text
    assert "| features | 13.0 | 10.5 | 0.5 | 1.24x | 26.0x |" in text
    assert "- DIFFERENT: rules: plain MLlib = deepspark" in text
    assert "Driver JVM peak: deepspark 3,100 MiB, plain PySpark 4,100 MiB." in text
    assert bench.verdict("analytics, deepspark / plain PySpark", 1.24) == "<= 1.3: met"
