"""The reliability tests (killed driver, racing writers, storage faults) run once per Delta engine."""

import pytest


@pytest.fixture
def tables(engine_tables):
    return engine_tables
