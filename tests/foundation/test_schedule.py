"""The order tests/schedule.py gives xdist names real modules, and the cluster's go as one."""

from __future__ import annotations

from pathlib import Path

from tests.schedule import LONGEST_FIRST, rank, unit_of

REPO = Path(__file__).resolve().parents[2]


def test_every_unit_the_schedule_names_is_a_test_module_or_folder_here():
    """A renamed module would otherwise drop silently to the back of the queue."""
    missing = [unit for unit in LONGEST_FIRST if not (REPO / unit).exists()]
    assert missing == []
    assert len(set(LONGEST_FIRST)) == len(LONGEST_FIRST)


def test_the_cluster_modules_are_one_unit_and_others_are_their_module():
    modules = (REPO / "tests/cluster").glob("test_*.py")
    clusters = {unit_of(f"{path.relative_to(REPO)}::test") for path in modules}
    assert clusters == {"tests/cluster"}
    assert unit_of("tests/tables/test_cli.py::test_x[spark]") == "tests/tables/test_cli.py"
    assert unit_of("tests/clusterish/test_a.py::t") == "tests/clusterish/test_a.py"


def test_the_listed_units_go_first_in_their_order_and_the_rest_after():
    queue = ["tests/foundation/test_config.py", *reversed(LONGEST_FIRST), "tests/report/test_report.py"]
    ordered = sorted(queue, key=rank)
    assert ordered[: len(LONGEST_FIRST)] == list(LONGEST_FIRST)
    assert ordered[len(LONGEST_FIRST) :] == ["tests/foundation/test_config.py", "tests/report/test_report.py"]
