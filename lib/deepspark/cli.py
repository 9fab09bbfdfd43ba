"""``deepspark``: run the pipeline or one stage, list tables, generate sample data.

Every command loads the config once (``--env`` overlay, ``--set`` overrides), builds the one
SparkSession, and for runs prints the summary path as its last line of output.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from deepspark.config import ConfigError, load_config
from deepspark.pipeline import (
    STAGE_NAMES,
    Run,
    StageFailed,
    new_run_id,
    run_pipeline,
    select_stages,
)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="deepspark: Spark + Delta data-quality, analytics and deep-learning pipeline.",
)

Env = Annotated[str, typer.Option("--env", help="config overlay: conf/<env>/ (local, cluster)")]
Sets = Annotated[list[str] | None, typer.Option("--set", help="override: section.key=value")]
ConfDir = Annotated[Path | None, typer.Option("--conf-dir", help="config folder (default conf/)")]


def _open_run(env: str, sets: list[str] | None, conf_dir: Path | None) -> Run:
    from deepspark.session import get_spark
    from deepspark.tables import Tables

    try:
        config = load_config(conf_dir, env, sets or [])
    except ConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    spark = get_spark(config)
    return Run(config=config, spark=spark, tables=Tables(spark, config), run_id=new_run_id())


def _progress(stage: str, state: str) -> None:
    if state == "start":
        typer.echo(f"[{stage}] running ...", err=True)
    else:
        typer.echo(f"[{stage}] {state}", err=True)


def _execute(stages: list[str], env: str, sets: list[str] | None, conf_dir: Path | None) -> None:
    run = _open_run(env, sets, conf_dir)
    typer.echo(f"run {run.run_id}: {' -> '.join(stages)}", err=True)
    try:
        path = run_pipeline(run, stages, _progress)
    except StageFailed as failure:
        typer.echo(f"error: {failure.__cause__}", err=True)
        typer.echo(str(failure), err=True)
        raise typer.Exit(1) from None
    for name, result in run.results.items():
        typer.echo(
            f"  {name:<10} {result.status:<8} {result.seconds:7.1f}s  "
            f"in={result.rows_in} out={result.rows_out} "
            f"quarantined={result.rows_quarantined}",
            err=True,
        )
    typer.echo(str(path))


@app.command()
def run(
    only: Annotated[str | None, typer.Option(help="comma-separated stages to run")] = None,
    start: Annotated[str | None, typer.Option("--from", help="run from this stage on")] = None,
    env: Env = "local",
    sets: Sets = None,
    conf_dir: ConfDir = None,
) -> None:
    """Run the whole pipeline (or --only some stages, or --from one on)."""
    try:
        stages = select_stages(only.split(",") if only else None, start)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    _execute(stages, env, sets, conf_dir)


def _stage_command(name: str):
    def command(env: Env = "local", sets: Sets = None, conf_dir: ConfDir = None) -> None:
        _execute([name], env, sets, conf_dir)

    command.__doc__ = f"Run the {name} stage alone."
    return command


for _name in STAGE_NAMES:
    if _name != "generate":
        app.command(name=_name)(_stage_command(_name))


@app.command()
def generate(
    rows: Annotated[
        int | None, typer.Option(help="customers to generate (orders and reviews scale with it)")
    ] = None,
    force: Annotated[bool, typer.Option(help="overwrite existing landing data")] = False,
    env: Env = "local",
    sets: Sets = None,
    conf_dir: ConfDir = None,
) -> None:
    """Write the sample retail domain and digits as raw landing files."""
    from deepspark.stages.generate import generate as generate_stage

    run = _open_run(env, sets, conf_dir)
    result = generate_stage(run, customers=rows, force=force)
    for note in result.notes:
        typer.echo(note, err=True)
    typer.echo(str(run.config.landing_root))


@app.command()
def tables(env: Env = "local", sets: Sets = None, conf_dir: ConfDir = None) -> None:
    """List every Delta table with its current version."""
    run = _open_run(env, sets, conf_dir)
    listing = run.tables.list()
    if not listing:
        typer.echo(f"no tables under {run.tables.root}")
    for name, version in listing.items():
        typer.echo(f"{name:<32} v{version}")


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
    app(args=argv, prog_name="deepspark")


if __name__ == "__main__":
    main()
