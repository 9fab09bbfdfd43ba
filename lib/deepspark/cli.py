"""``deepspark``: run the pipeline or one stage, list tables, generate sample data, rebuild a report.

Every command loads the config once (``--env`` overlay, ``--set`` overrides) and builds the one
SparkSession. Runs show progress on stderr (a bar over the stages and one per long step) and
print the report path (or, without a report stage, the summary path) as their last line.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from deepspark.config import ConfigError, load_config
from deepspark.errors import describe
from deepspark.pipeline import STAGE_NAMES, run_pipeline, select_stages
from deepspark.run import Run, StageFailed, new_run_id, run_dir

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="deepspark: Spark + Delta data-quality, analytics and deep-learning pipeline.",
)

Env = Annotated[str, typer.Option("--env", help="config overlay: conf/<env>/ (local, cluster)")]
Sets = Annotated[list[str] | None, typer.Option("--set", help="override: section.key=value")]
ConfDir = Annotated[Path | None, typer.Option("--conf-dir", help="config folder (default conf/)")]
RunId = Annotated[
    str | None,
    typer.Option("--run-id", help="run id (default: a new one); stages run apart share one"),
]


def _config(env: str, sets: list[str] | None, conf_dir: Path | None):
    try:
        return load_config(conf_dir, env, sets or [])
    except ConfigError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None


def _open_run(
    env: str, sets: list[str] | None, conf_dir: Path | None, run_id: str | None = None, parts=()
) -> Run:
    from deepspark.session import get_spark
    from deepspark.tables import Tables

    config = _config(env, sets, conf_dir)
    run_id = run_id or new_run_id()
    try:
        run_dir(config, run_id)
    except ValueError as error:
        typer.echo(f"error: --run-id: {error}", err=True)
        raise typer.Exit(2) from None
    spark = get_spark(config)
    return Run(config, spark, Tables(spark, config), run_id, parts=tuple(parts))


def _execute(
    stages: list[str],
    env: str,
    sets: list[str] | None,
    conf_dir: Path | None,
    run_id: str | None = None,
    parts=(),
) -> None:
    from deepspark.progress import StageProgress

    run = _open_run(env, sets, conf_dir, run_id, parts)
    with StageProgress(stages) as progress:
        progress.say(f"run {run.run_id}: {' -> '.join(stages)}")
        run.on_step = progress.step
        try:
            path = run_pipeline(run, stages, progress.stage)
        except StageFailed as failure:
            progress.say(f"error: {describe(failure.__cause__)}")
            progress.say(str(failure))
            raise typer.Exit(1) from None
    for name, result in run.results.items():
        typer.echo(
            f"  {name:<10} {result.status:<8} {result.seconds:7.1f}s  "
            f"in={result.rows_in} out={result.rows_out} "
            f"quarantined={result.rows_quarantined}",
            err=True,
        )
    report = run.results.get("report")
    if report is not None:
        typer.echo(f"summary: {path}", err=True)
        typer.echo(report.metrics["html"])
    else:
        typer.echo(str(path))


@app.command()
def run(
    only: Annotated[str | None, typer.Option(help="comma-separated stages to run")] = None,
    start: Annotated[str | None, typer.Option("--from", help="run from this stage on")] = None,
    env: Env = "local",
    sets: Sets = None,
    conf_dir: ConfDir = None,
    run_id: RunId = None,
) -> None:
    """Run the whole pipeline (or --only some stages, or --from one on)."""
    try:
        stages = select_stages(only.split(",") if only else None, start)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    _execute(stages, env, sets, conf_dir, run_id)


def _stage_command(name: str):
    def command(
        env: Env = "local", sets: Sets = None, conf_dir: ConfDir = None, run_id: RunId = None
    ) -> None:
        _execute([name], env, sets, conf_dir, run_id)

    command.__doc__ = f"Run the {name} stage alone."
    return command


for _name in STAGE_NAMES:
    if _name not in ("generate", "analytics", "report"):
        app.command(name=_name)(_stage_command(_name))


@app.command()
def analytics(
    part: Annotated[
        list[str] | None, typer.Option("--part", help="kmeans, rules or trees (repeatable; default all)")
    ] = None,
    env: Env = "local",
    sets: Sets = None,
    conf_dir: ConfDir = None,
    run_id: RunId = None,
) -> None:
    """Run the analytics stage alone: every configured analysis, or the --part ones."""
    from deepspark.stages.analytics.stage import check_parts

    try:
        check_parts(part or [])
    except ValueError as error:
        typer.echo(f"error: --part: {error}", err=True)
        raise typer.Exit(2) from None
    _execute(["analytics"], env, sets, conf_dir, run_id, part or ())


@app.command()
def report(
    run_id: Annotated[str, typer.Argument(help="the run whose report to (re)build")],
    env: Env = "local",
    sets: Sets = None,
    conf_dir: ConfDir = None,
) -> None:
    """Rebuild a run's report (runs/<id>/report.html and report.md) from its saved stage results."""
    from deepspark.stages.report.stage import build_report

    config = _config(env, sets, conf_dir)
    try:
        _, html = build_report(config, run_id, STAGE_NAMES)
    except (ValueError, FileNotFoundError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(str(html))


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
    from deepspark.stages.generate.stage import generate as generate_stage

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


config_app = typer.Typer(
    no_args_is_help=True, help="Show the configuration: resolved values, schema, key reference."
)
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(
    sources: Annotated[
        bool, typer.Option("--sources", help="name the file or --set behind each value")
    ] = False,
    env: Env = "local",
    sets: Sets = None,
    conf_dir: ConfDir = None,
) -> None:
    """The resolved configuration (base + overlay + --set), secrets redacted."""
    from deepspark.config.reference import resolved

    typer.echo(resolved(_config(env, sets, conf_dir), sources), nl=False)


@config_app.command("schema")
def config_schema() -> None:
    """The JSON Schema of every key, with its type, default and description."""
    import json

    from deepspark.config.reference import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


@config_app.command("docs")
def config_docs(
    output: Annotated[Path, typer.Option(help="where to write the key reference")] = Path("docs/config.md"),
) -> None:
    """Write the Markdown key reference (docs/config.md) from the schema."""
    from deepspark.config.reference import key_reference

    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(key_reference(), encoding="utf-8")
    typer.echo(str(output))


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
    app(args=argv, prog_name="deepspark")


if __name__ == "__main__":
    main()
