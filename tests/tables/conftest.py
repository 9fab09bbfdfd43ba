"""Every test in tests/tables runs once per Delta engine: the same contract for both."""

from __future__ import annotations

import pytest
from deepspark.tables import Tables

ENGINES = ("rs", "spark")


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    return request.param


@pytest.fixture
def engine_config(config, engine):
    return config.model_copy(update={"tables": config.tables.model_copy(update={"engine": engine})})


@pytest.fixture
def tables(spark, engine_config) -> Tables:
    made = Tables(spark, engine_config)
    assert made.engine.name == engine_config.tables.engine
    return made
