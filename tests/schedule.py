"""The order in which pytest-xdist hands test modules to its workers (tests/run.sh: --dist loadfile).

xdist's own order is most tests first, which put the one-test modules that run longest (a
standalone cluster's whole run, 10 min in CI) last: in the CI run of 2026-12-03 one worker ran
the last 12 minutes alone. Here the longest go first, and a worker's tail is short modules.
"""

from __future__ import annotations

from xdist.scheduler import LoadFileScheduling

# Longest first, minutes on 2 cores beside Airflow's suite (junit times, make test of 9f2d8a8).
# tests/cluster is one unit: each module starts its own standalone cluster, and two clusters
# side by side would share 2 cores between four executors. It comes fourth, not first: a
# standalone run beside the training module once passed its 900 s timeout.
LONGEST_FIRST = (
    "tests/learning/test_training.py",  # 8.1
    "tests/test_pipeline.py",  # 5.1
    "tests/test_examples.py",  # 3.6
    "tests/cluster",  # 8.2
    "tests/learning/test_own_datasets.py",  # 2
    "tests/tables/test_contract.py",  # 1.8
    "tests/tables/test_engines_agree.py",  # 1.3
    "tests/tables/test_interop.py",  # 1.2
    "tests/reliability/test_concurrent_writers.py",  # 3.1 then; 51 s alone since its gate
    "tests/stages/test_clean.py",  # 0.9
    "tests/reliability/test_storage_faults.py",  # 0.6
    "tests/stages/test_bad_input.py",  # 0.6
    "tests/reliability/test_killed_driver.py",  # 0.3
    "tests/stages/test_own_data.py",  # 0.3
)
ONE_UNIT = ("tests/cluster",)


def unit_of(nodeid: str) -> str:
    """The unit a test goes to a worker with: its module, or a folder that is one unit."""
    module = nodeid.split("::", 1)[0]
    return next((folder for folder in ONE_UNIT if module.startswith(folder + "/")), module)


def rank(unit: str) -> int:
    """A unit's place in the queue: LONGEST_FIRST's, then every other unit, in xdist's order."""
    return LONGEST_FIRST.index(unit) if unit in LONGEST_FIRST else len(LONGEST_FIRST)


class LongestFirst(LoadFileScheduling):
    def _split_scope(self, nodeid: str) -> str:
        return unit_of(nodeid)

    def _assign_work_unit(self, node) -> None:
        for unit in sorted(self.workqueue, key=rank):  # stable: the rest keep xdist's order
            self.workqueue.move_to_end(unit)
        super()._assign_work_unit(node)
