"""Progress of a run on the terminal: one bar over the stages, one per long step (epochs,
datasets), and one line per finished stage.

On a terminal the bars redraw in place and the stage lines print above them; elsewhere (CI,
Airflow logs) each stage's end is one plain line and the bars print once, finished, at the end.
Log records never come here: they go to the run's log (:mod:`deepspark.console`), but for
deepspark's own warnings, which :meth:`StageProgress.say` prints once each.
"""

from __future__ import annotations

from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from deepspark.run import StageResult


class StageProgress:
    """Context manager; ``stage`` and ``step`` are the pipeline's callbacks."""

    def __init__(self, stages: list[str], stream: TextIO | None = None) -> None:
        self.console = Console(file=stream, stderr=stream is None)
        self.bars = Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
        )
        self.pipeline = self.bars.add_task("pipeline", total=len(stages))
        self.steps: dict[str, int] = {}

    def __enter__(self) -> StageProgress:
        if self.console.is_terminal:
            self.bars.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.console.is_terminal:
            self.bars.stop()
        else:
            self.console.print(self.bars.make_tasks_table(self.bars.tasks))

    def say(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def stage(self, name: str, result: StageResult | None) -> None:
        """A stage starts (``result`` None) or ends: its one line, with its rows."""
        if result is None:
            self.bars.update(self.pipeline, description=f"pipeline: {name}")
            return
        self.bars.advance(self.pipeline)
        self.say(stage_line(name, result))
        for detail in result.details:
            self.say(f"  {detail}")

    def step(self, what: str, done: int, total: int) -> None:
        if what not in self.steps:
            self.steps[what] = self.bars.add_task(what, total=total)
        self.bars.update(self.steps[what], completed=done, total=total)


def stage_line(name: str, result: StageResult) -> str:
    """``[clean]      ok        15.1s  in=14226 out=13260 quarantined=745``: rows where there are any."""
    rows = [("in", result.rows_in), ("out", result.rows_out), ("quarantined", result.rows_quarantined)]
    counts = " ".join(f"{label}={count}" for label, count in rows if count)
    if result.status == "skipped" and result.notes:
        counts = result.notes[0]
    return f"{f'[{name}]':<12} {result.status:<7} {result.seconds:6.1f}s  {counts}".rstrip()
