"""The registry is the one list of stages, and the run contract holds what it promises."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from deepspark.pipeline import STAGE_NAMES, STAGES, select_stages
from deepspark.run import STATUSES, StageResult, _merge, load_results

REPO = Path(__file__).resolve().parents[2]


def test_the_airflow_dag_runs_every_registered_stage_but_generate_in_order():
    """The DAG lives in Airflow's own environment and cannot import the registry, so its
    ``spark_stage(task, job, ...)`` calls are read from the file and held against it."""
    dag = ast.parse((REPO / "deploy/airflow/dags/deepspark_daily.py").read_text())
    calls = sorted((node for node in ast.walk(dag) if isinstance(node, ast.Call)), key=lambda c: c.lineno)
    jobs = [
        call.args[1].value
        for call in calls
        if isinstance(call, ast.Call)
        and getattr(call.func, "id", None) == "spark_stage"
        and len(call.args) > 1
    ]
    assert list(dict.fromkeys(jobs)) == [name for name in STAGE_NAMES if name != "generate"]


def test_every_registered_stage_has_a_spark_submit_job_that_runs_its_own_command():
    """Each jobs/<stage>.py is one call, ``main(["<stage>", *sys.argv[1:]])`` (report's runs the
    report stage under a run id, run_pipeline's the whole run). The cluster tests submit
    run_pipeline.py and clean.py for real."""
    commands = {}
    for job in (REPO / "jobs").glob("*.py"):
        calls = [n for n in ast.walk(ast.parse(job.read_text())) if isinstance(n, ast.Call)]
        [main] = [c for c in calls if getattr(c.func, "id", None) == "main"]
        [listed] = main.args
        *fixed, rest = listed.elts
        assert ast.unparse(rest) == "*sys.argv[1:]", job.name
        commands[job.stem] = [item.value for item in fixed]
    expected = {name: [name] for name in STAGES} | {
        "report": ["run", "--only", "report"],
        "run_pipeline": ["run"],
    }
    assert commands == expected


def test_stage_selection_follows_the_registry_order_whatever_order_it_is_given_in():
    assert select_stages(["report", "ingest"]) == ["ingest", "report"]
    assert select_stages(start="predict") == ["predict", "report"]
    with pytest.raises(ValueError, match=r"unknown stage\(s\) \['cleaning'\]"):
        select_stages(["cleaning"])


def test_a_stage_status_outside_the_contract_is_refused():
    with pytest.raises(ValueError, match="expected one of ok, skipped, warning, failed"):
        StageResult(status="done")


def test_two_parts_of_a_stage_merge_to_the_worse_status_and_the_sum_of_rows():
    merged = _merge(
        StageResult(status="warning", rows_in=3, tables={"gold.a": 1}, notes=["a"]),
        StageResult(status="ok", rows_in=4, tables={"gold.b": 2}, notes=["b"]),
    )
    assert (merged.status, merged.rows_in, merged.tables, merged.notes) == (
        "warning",
        7,
        {"gold.a": 1, "gold.b": 2},
        ["a", "b"],
    )
    assert max(STATUSES, key=STATUSES.index) == "failed"


def test_saved_results_come_back_in_the_order_given_and_unknown_stages_last(tmp_path):
    folder = tmp_path / "stages"
    folder.mkdir()
    for stage, at in [("custom", "1"), ("clean", "2"), ("ingest", "3")]:
        (folder / f"{stage}.json").write_text(
            f'{{"stage": "{stage}", "finished_at": "{at}", "result": {{"rows_in": 1}}}}'
        )
    results, _ = load_results(tmp_path, ("ingest", "clean"))
    assert list(results) == ["ingest", "clean", "custom"]
