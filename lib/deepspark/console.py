"""A quiet console: a command's own lines on the terminal, everything else in the run's log.

Spark's JVM, TensorFlow's C++ logging and the Horovod ranks write straight to the process's
file descriptors 1 and 2, below anything Python's logging can filter. So while a command runs,
:func:`quiet_console` points both descriptors at ``runs/<id>/logs/<command>.log`` (processes
started meanwhile, the JVM first, inherit that) and hands the command the terminal's own
streams for what a user should see: progress, one line per stage, warnings that matter (once
each), an error in one line, and the paths to the log, summary and report.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

LOGS = "logs"


@dataclass(frozen=True)
class Terminal:
    """The streams the user sees while the process's own stdout and stderr go to ``log``."""

    out: TextIO
    err: TextIO
    log: Path


@contextmanager
def quiet_console(log: Path) -> Iterator[Terminal]:
    """Send file descriptors 1 and 2 (and so every log record and warning) to ``log``, appended;
    yield the terminal's streams; restore the descriptors on the way out."""
    log.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = os.dup(1), os.dup(2)
    target = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(target, 1)
    os.dup2(target, 2)
    os.close(target)
    out = os.fdopen(os.dup(saved[0]), "w", buffering=1, encoding="utf-8")
    err = os.fdopen(os.dup(saved[1]), "w", buffering=1, encoding="utf-8")
    try:
        yield Terminal(out, err, log)
    finally:
        for stream in (sys.stdout, sys.stderr, out, err):
            stream.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for descriptor in saved:
            os.close(descriptor)
        out.close()
        err.close()


class WarningsOnce(logging.Handler):
    """deepspark's own warnings and errors for the terminal, each distinct message once; the
    run's log keeps every record (through the root logger's handlers)."""

    def __init__(self, emit_line) -> None:
        super().__init__(level=logging.WARNING)
        self.emit_line = emit_line
        self.seen: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        message = (record.getMessage().splitlines() or [""])[0]
        if message in self.seen:
            return
        self.seen.add(message)
        self.emit_line(f"{record.levelname.lower()}: {message}")


@contextmanager
def warnings_to(emit_line) -> Iterator[None]:
    """While the block runs, deepspark's warnings also reach ``emit_line``, once each."""
    handler = WarningsOnce(emit_line)
    logger = logging.getLogger("deepspark")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
