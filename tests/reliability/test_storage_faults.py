"""Storage that fails under a table: a full disk, a read-only file system, data files deleted or
damaged behind Delta's back. Each gives a clear error that names the table or the file, and a
failed write leaves no new table version and no files behind.

The full and read-only file systems are real: a 1 MiB tmpfs mounted under the tables' root
(mounting needs root, as CI has; elsewhere these tests skip and say why).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from deepspark.errors import JVM_FRAME, describe
from deepspark.pipeline import run_pipeline
from deepspark.run import Run, StageFailed
from deepspark.tables import TableError, Tables
from deltalake import DeltaTable
from pyspark.sql import functions as F

from tests.small_conf import REPO, cli_command, cli_environment, load_small_config, write_small_conf

pytestmark = pytest.mark.slow


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@pytest.fixture
def small_disk(config):
    """The tables' root on a 1 MiB tmpfs; yields a function that makes it read-only."""
    root = Path(config.tables_root)
    root.mkdir(parents=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(root))
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield lambda: _mount("-o", "remount,ro", str(root)).check_returncode()
    finally:
        subprocess.run(["umount", "-l", str(root)], check=True)


def incompressible(spark, rows: int):
    """Rows of 64 hex characters from a hash: about 40 bytes each on disk, even compressed."""
    return spark.range(rows).select(F.col("id"), F.sha2(F.col("id").cast("string"), 256).alias("text"))


def leftovers(table_path: str) -> list[str]:
    committed = {Path(p).name for p in DeltaTable(table_path).file_uris()}
    on_disk = {p.name for p in Path(table_path).rglob("*.parquet")}
    return sorted(on_disk - committed)


def test_a_full_disk_fails_the_write_clearly_and_leaves_the_table_as_it_was(
    spark, tables, engine, small_disk
):
    tables.write(incompressible(spark, 10), "silver.notes")
    with pytest.raises(TableError) as failure:
        tables.write(incompressible(spark, 100_000).repartition(2), "silver.notes")
    message = str(failure.value)
    assert "silver/notes: the write failed before its commit, so the table is unchanged" in message
    assert "No space left on device" in message
    assert "\tat " not in message and len(message.splitlines()) == 1
    assert tables.version("silver.notes") == 0 and tables.read("silver.notes").count() == 10
    if engine == "rs":  # delta-spark writes beside the table's files and leaves them to vacuum
        assert leftovers(tables.path("silver.notes")) == []  # (which needs a disk with room)
    assert not (Path(tables.path("silver.notes")) / "_staging").exists() or not any(
        (Path(tables.path("silver.notes")) / "_staging").iterdir()
    )


def test_a_read_only_file_system_fails_the_write_clearly(spark, tables, small_disk):
    tables.write(incompressible(spark, 10), "silver.notes")
    small_disk()  # now read-only
    with pytest.raises(TableError) as failure:
        tables.write(incompressible(spark, 10), "silver.notes")
    message = str(failure.value)
    assert "silver/notes: the write failed before its commit, so the table is unchanged" in message
    assert "Read-only file system" in message
    assert tables.version("silver.notes") == 0 and tables.read("silver.notes").count() == 10


def _cli(conf: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        cli_command(conf, *args), capture_output=True, text=True, cwd=REPO, env=cli_environment(), timeout=600
    )


@pytest.fixture(scope="module")
def cleaned(spark, tmp_path_factory):
    """A small sample run up to silver (in this process: only the damage is read by the CLI)."""
    conf = write_small_conf(tmp_path_factory.mktemp("storage") / "conf")
    config = load_small_config(conf)
    run_pipeline(Run(config, spark, Tables(spark, config), "storage"), ["generate", "ingest", "clean"])
    return conf


def _silver_file(conf: Path, table: str = "orders") -> Path:
    return sorted((conf / "data" / "tables" / "silver" / table).glob("*.parquet"))[0]


def _error_line(stderr: str) -> str:
    """The CLI's own message: one line, no JVM stack (Spark's log lines above it may have one)."""
    lines = stderr.splitlines()
    [line] = [text for text in lines if text.startswith("error: ")]
    assert not any(JVM_FRAME.match(text) for text in lines[lines.index(line) + 1 :][:3])
    return line


def corrupt(file: Path) -> None:
    file.write_bytes(b"not parquet at all" * 100)


def test_a_corrupt_data_file_stops_the_command_with_one_line_naming_the_file(cleaned):
    victim = _silver_file(cleaned)
    kept = victim.read_bytes()
    corrupt(victim)
    try:
        done = _cli(cleaned, "validate")
    finally:
        victim.write_bytes(kept)
    assert done.returncode == 1
    line = _error_line(done.stderr)
    assert (
        victim.name in line and "[FAILED_READ_FILE.NO_HINT] Encountered error while reading file" in line
    ), line


def test_a_missing_data_file_stops_the_stage_naming_it_and_a_restored_one_passes(spark, cleaned):
    config = load_small_config(cleaned)
    victim = _silver_file(cleaned)
    kept = victim.read_bytes()
    victim.unlink()
    try:
        with pytest.raises(StageFailed) as failed:
            run_pipeline(Run(config, spark, Tables(spark, config), "damaged"), ["validate"])
    finally:
        victim.write_bytes(kept)
    line = describe(failed.value.__cause__)
    assert victim.name in line and "does not exist" in line and "\n" not in line, line

    again = Run(config, spark, Tables(spark, config), "restored")
    run_pipeline(again, ["validate"])
    assert again.results["validate"].status in ("ok", "warning")
