"""Every test in tests/tables runs once per Delta engine: one contract for both."""

import pytest


@pytest.fixture
def tables(engine_tables):
    return engine_tables
