"""A conf folder for runs in other processes (spark-submit, Airflow tasks): the repository's
conf/base plus one overlay that keeps the run small and inside a temporary folder.

Plain Python and PyYAML only: the Airflow tests import it from Airflow's own environment.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# A standalone cluster's executors are JVMs of their own, started by its workers: they take the
# options of the JVMs the tests start (tests/run.sh: C1 only, 240 MiB of code cache) from here.
EXECUTOR_JAVA = {"spark.executor.extraJavaOptions": os.environ.get("SPARK_SUBMIT_OPTS", "")}
SMALL = {
    "spark": {"master": "local[2]", "shuffle_partitions": 2, "conf": EXECUTOR_JAVA},
    "generate": {"customers": 150},
    # One fit per k over a short range: tests/analytics holds k-means to scikit-learn.
    "analytics": {"kmeans": {"k": [2, 4], "n_init": 1}},
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


def cli_command(conf: Path, *args: str) -> list[str]:
    """``deepspark <args>`` on a ``write_small_conf`` folder, run by this interpreter."""
    return [sys.executable, "-m", "deepspark.cli", *args, "--conf-dir", str(conf), "--env", "small"]


def cli_environment() -> dict[str, str]:
    """This process's environment plus the tests' PII key, for ``cli_command``."""
    from tests.conftest import TEST_HMAC_KEY  # deepspark's side only: Airflow's never calls this

    return {**os.environ, "DEEPSPARK_SECRET_PII_HMAC_KEY": TEST_HMAC_KEY}


def load_small_config(conf: Path):
    """The typed Config of a ``write_small_conf`` folder, with the tests' PII key."""
    from deepspark.config import load_config

    return load_config(conf, "small", environ=cli_environment())
