"""One SparkSession for the whole test run (local[2], UI off, scratch in a temp folder)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from deepspark.config import Config, load_config  # noqa: E402
from deepspark.run import AS_OF, run_as_of  # noqa: E402
from deepspark.session import get_spark  # noqa: E402
from deepspark.tables import Tables  # noqa: E402

TEST_HMAC_KEY = "test-only-key-not-a-secret"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """--dist loadfile hands out the longest modules first (tests/schedule.py)."""
    if config.getvalue("dist") == "loadfile":
        from tests.schedule import LongestFirst

        return LongestFirst(config, log)
    return None


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("deepspark")


@pytest.fixture(scope="session")
def base_config(session_dir) -> Config:
    return load_config(
        env="local",
        overrides=[
            "spark.master=local[2]",
            f"spark.scratch_dir={session_dir / 'spark'}",
            "spark.shuffle_partitions=2",
            f"run.data_root={session_dir / 'data'}",
            f"run.runs_dir={session_dir / 'runs'}",
            # one MLflow store per test process: a fresh SQLite store costs seconds to create
            f"tracking.uri=sqlite:///{session_dir / 'mlflow' / 'mlflow.db'}",
        ],
        environ={"DEEPSPARK_SECRET_PII_HMAC_KEY": TEST_HMAC_KEY},
    )


@pytest.fixture(scope="session")
def spark(base_config):
    session = get_spark(base_config)
    yield session
    session.stop()


@pytest.fixture
def config(base_config, tmp_path) -> Config:
    """The session's config with its own data folder, so tests never share tables."""
    return base_config.model_copy(
        update={
            "run": base_config.run.model_copy(
                update={"data_root": tmp_path / "data", "runs_dir": tmp_path / "runs"}
            )
        }
    )


@pytest.fixture
def tables(spark, config) -> Tables:
    return Tables(spark, config)


@pytest.fixture(params=[pytest.param("rs"), pytest.param("spark", marks=pytest.mark.slow)])
def engine(request) -> str:
    """Each Delta engine in turn: tests/tables and tests/reliability take ``tables`` from it.
    delta-spark's half is slow here (about 3 s of snapshot jobs per table operation on 2 cores),
    so make test-fast holds the contract on rs and make test on both."""
    return request.param


def on_engine(config: Config, engine: str) -> Config:
    return config.model_copy(update={"tables": config.tables.model_copy(update={"engine": engine})})


def share_moment(run_dir: Path, other_run_dir: Path) -> None:
    """Give the run in ``other_run_dir`` the moment of the run in ``run_dir`` (made now if it has
    none yet): 'now' to clean is then the same for both, as for two runs of one run id."""
    run_as_of(run_dir)
    other_run_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(run_dir / AS_OF, other_run_dir / AS_OF)


@pytest.fixture
def engine_tables(spark, config, engine) -> Tables:
    made = Tables(spark, on_engine(config, engine))
    assert made.engine.name == engine
    return made


# tests/airflow run in Airflow's own environment (make test runs them there).
collect_ignore = ["airflow"]
