"""A conf folder for runs in other processes (spark-submit, Airflow tasks): the repository's
conf/base plus one overlay that keeps the run small and inside a temporary folder.

Plain Python and PyYAML only: the Airflow tests import it from Airflow's own environment.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SMALL = {
    "spark": {"master": "local[2]", "shuffle_partitions": 2},
    "generate": {"customers": 150},
    # One epoch each: tests/learning holds the networks to their accuracy.
    "train": {"models": {"digits_cnn": {"epochs": 1}, "review_rnn": {"epochs": 1}}},
}


def write_small_conf(folder: Path, env: str = "small", **sections: dict) -> Path:
    """``folder/base`` (a copy of conf/base) and ``folder/<env>/<section>.yaml``: SMALL, the data
    and runs under ``folder``, then ``sections`` (each replaces that section's overlay keys)."""
    shutil.copytree(REPO / "conf" / "base", folder / "base")
    overlay = {**SMALL, "run": {"data_root": str(folder / "data"), "runs_dir": str(folder / "runs")}}
    for section, values in sections.items():
        overlay[section] = {**overlay.get(section, {}), **values}
    (folder / env).mkdir()
    for section, values in overlay.items():
        (folder / env / f"{section}.yaml").write_text(yaml.safe_dump(values))
    return folder
