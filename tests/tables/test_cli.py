"""``deepspark tables``, ``tables compact`` and ``tables vacuum`` on a conf's tables, by the CLI."""

from __future__ import annotations

import subprocess

import pytest
from deepspark.tables import Tables

from tests.small_conf import cli_command, cli_environment, load_small_config, write_small_conf


@pytest.mark.slow  # three CLI processes
def test_the_cli_lists_compacts_with_the_conf_zorder_and_vacuums(spark, tmp_path):
    conf = write_small_conf(
        tmp_path / "conf", tables={"zorder": {"silver.t": ["amount"]}, "vacuum_retention_hours": 0}
    )
    tables = Tables(spark, load_small_config(conf))
    for i in range(3):
        tables.write(spark.createDataFrame([(i, float(i))], "id long, amount double"), "silver.t")

    def deepspark(*args):
        done = subprocess.run(
            cli_command(conf, "tables", *args),
            capture_output=True,
            text=True,
            env=cli_environment(),
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.split()

    assert deepspark() == ["silver.t", "v2"]
    assert deepspark("compact") == ["silver.t", "v3", "3", "files", "->", "1"]
    assert tables.history("silver.t")[0]["operation"] in ("OPTIMIZE", "WRITE")  # spark, rs
    assert deepspark("vacuum", "silver.t") == ["silver.t", "3", "files", "deleted"]
    assert sorted(r.id for r in tables.read("silver.t").collect()) == [0, 1, 2]
