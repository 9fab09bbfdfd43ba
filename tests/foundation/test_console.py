"""The quiet console: what child processes and libraries write goes to the run's log, the
command's own lines reach the terminal, and deepspark's warnings reach it once."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import textwrap

from deepspark.console import WarningsOnce, warnings_to
from deepspark.progress import StageProgress, stage_line
from deepspark.run import StageResult


def test_children_and_raw_descriptors_go_to_the_log_and_the_terminal_keeps_its_own_lines(tmp_path):
    log = tmp_path / "logs" / "run.log"
    script = textwrap.dedent(
        f"""
        import os, subprocess, sys
        from deepspark.console import quiet_console
        from pathlib import Path
        with quiet_console(Path({str(log)!r})) as terminal:
            os.write(2, b"jvm-like line on fd 2\\n")
            subprocess.run([sys.executable, "-c", "print('a child process line')"], check=True)
            print("a print() line")
            print("progress for the user", file=terminal.err)
            print("the report path", file=terminal.out)
        print("after: the terminal again")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "the report path\nafter: the terminal again\n"
    assert done.stderr == "progress for the user\n"
    assert log.read_text().splitlines() == ["jvm-like line on fd 2", "a child process line", "a print() line"]


def test_a_warning_reaches_the_terminal_once_and_info_never():
    said: list[str] = []
    logger = logging.getLogger("deepspark.some_stage")
    logger.setLevel(logging.INFO)
    with warnings_to(said.append):
        for _ in range(3):
            logger.warning("orders: 12 rows quarantined as schema_drift")
        logger.info("delta engine: rs")
        logging.getLogger("py4j").warning("not ours")
    logger.warning("after the block")
    assert said == ["warning: orders: 12 rows quarantined as schema_drift"]
    assert not any(isinstance(h, WarningsOnce) for h in logging.getLogger("deepspark").handlers)


def test_each_stage_is_one_line_with_its_rows_and_the_bars_print_once_off_a_terminal():
    stream = io.StringIO()
    with StageProgress(["ingest", "clean"], stream) as progress:
        progress.stage("ingest", None)
        progress.stage("ingest", StageResult(rows_in=10, rows_out=10, seconds=1.25))
        progress.stage("clean", None)
        progress.step("clean (datasets)", 3, 3)
        progress.stage("clean", StageResult(status="warning", rows_in=10, rows_out=8, rows_quarantined=2))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[ingest]     ok         1.2s  in=10 out=10"
    assert lines[1] == "[clean]      warning    0.0s  in=10 out=8 quarantined=2"
    assert "pipeline: clean" in lines[2] and "2/2" in lines[2] and "3/3" in lines[3]
    assert stage_line("report", StageResult(seconds=0.3)) == "[report]     ok         0.3s"
