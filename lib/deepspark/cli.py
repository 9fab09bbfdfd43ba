"""``deepspark``: run the pipeline or one stage, list tables, generate sample data, rebuild a report.

Every command loads the config once (``--env`` overlay, ``--set`` overrides) and builds the one
SparkSession. While it runs, Spark, TensorFlow and the Horovod ranks write to
``runs/<id>/logs/<command>.log``, not the terminal (:mod:`deepspark.console`). A run shows
progress on stderr (a bar over the stages and one per long step), one line per stage, deepspark's
warnings once each and the log's path, and prints the report path (or, without a report stage,
the summary path) as its last line on stdout. An error is one line plus the log's path.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from deepspark.config import ConfigError, load_config
from deepspark.console import LOGS, Terminal, quiet_console, warnings_to
from deepspark.errors import describe
from deepspark.lineage import describe_models
from deepspark.pipeline import STAGE_NAMES, run_pipeline, select_stages
from deepspark.progress import StageProgress
from deepspark.run import Run, StageFailed, new_run_id, run_dir
from deepspark.session import get_spark
from deepspark.tables import Tables

log = logging.getLogger(__name__)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # an unexpected error is one line too (see main)
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


@contextmanager
def _opened_run(
    command: str,
    env: str,
    sets: list[str] | None,
    conf_dir: Path | None,
    run_id: str | None = None,
    parts=(),
    in_a_run: bool = True,
) -> Iterator[tuple[Run, Terminal]]:
    """A Run with its session, while the console is quiet: everything but the command's own lines
    goes to ``runs/<id>/logs/<command>.log`` (``runs/logs/<command>.log`` for a command that is
    no part of a run: generate, tables). Any failure inside ends the command with one line and
    the log's path (its traceback stays in the log)."""
    config = _config(env, sets, conf_dir)
    run_id = run_id or new_run_id()
    try:
        folder = run_dir(config, run_id) if in_a_run else Path(config.run.runs_dir)
    except ValueError as error:
        typer.echo(f"error: --run-id: {error}", err=True)
        raise typer.Exit(2) from None
    log_name = ".".join([command, "+".join(parts)] if parts else [command]) + ".log"
    with quiet_console(folder / LOGS / log_name) as terminal:
        try:
            spark = get_spark(config)
            yield Run(config, spark, Tables(spark, config), run_id, parts=tuple(parts)), terminal
        except typer.Exit:
            raise
        except Exception as error:  # said in one line here; the whole of it is in the log
            cause = error.__cause__ if isinstance(error, StageFailed) and error.__cause__ else error
            log.error("%s failed", command, exc_info=error)
            _say_failure(cause, terminal.log, terminal.err)
            raise typer.Exit(1) from None


def _say_failure(error: BaseException, log_path: Path, stream) -> None:
    """An error as the user sees it: one line, then where its whole story is."""
    print(f"error: {describe(error)}", file=stream)
    print(f"log: {log_path}", file=stream)


def _execute(
    stages: list[str],
    env: str,
    sets: list[str] | None,
    conf_dir: Path | None,
    run_id: str | None = None,
    parts=(),
    command: str = "run",
) -> None:
    """Run ``stages``: progress, one line per stage, the log and summary paths on the terminal's
    stderr; the report's path (or the summary's, without a report stage) last, on its stdout."""
    with _opened_run(command, env, sets, conf_dir, run_id, parts) as (run, terminal):
        with StageProgress(stages, terminal.err) as progress, warnings_to(progress.say):
            progress.say(f"run {run.run_id}: {' -> '.join(stages)}")
            run.on_step = progress.step
            path = run_pipeline(run, stages, progress.stage)
        print(f"log: {terminal.log}", file=terminal.err)
        report = run.results.get("report")
        if report is not None:
            print(f"summary: {path}", file=terminal.err)
            print(report.metrics["html"], file=terminal.out)
        else:
            print(path, file=terminal.out)


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
        _execute([name], env, sets, conf_dir, run_id, command=name)

    command.__doc__ = f"Run the {name} stage alone."
    return command


for _name in STAGE_NAMES:
    if _name not in ("generate", "analytics", "predict", "report"):
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
    _execute(["analytics"], env, sets, conf_dir, run_id, part or (), command="analytics")


@app.command()
def predict(
    model: Annotated[
        str | None,
        typer.Option(help="score new rows with this model: NAME or NAME:VERSION (default: latest)"),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--input", help="the new rows: a table (layer.name), or files (csv, json, parquet, txt, images)"
        ),
    ] = None,
    output: Annotated[
        str | None, typer.Option(help="the predictions table written (default gold.<model>_scored)")
    ] = None,
    env: Env = "local",
    sets: Sets = None,
    conf_dir: ConfDir = None,
    run_id: RunId = None,
) -> None:
    """Run the predict stage alone (train.predict), or score new rows: --model and --input. New
    rows are made examples by the recipe the model was trained with (its manifest), as its gold
    table was; a row that cannot be scored is written with the problem, not dropped."""
    if (model is None) != (source is None):
        typer.echo(
            "error: --model and --input go together (they score new rows); with neither, predict runs "
            "train.predict",
            err=True,
        )
        raise typer.Exit(2)
    if model is None:
        _execute(["predict"], env, sets, conf_dir, run_id, command="predict")
        return
    from deepspark.stages.predict import parse_model, predict_new

    try:
        parse_model(model)
    except ValueError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    with _opened_run("predict", env, sets, conf_dir, in_a_run=False) as (run, terminal):
        scored = predict_new(run, model, source, output)
        for line in scored.lines():
            print(line, file=terminal.err)
        print(f"log: {terminal.log}", file=terminal.err)
        print(scored.output, file=terminal.out)


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

    with _opened_run("generate", env, sets, conf_dir, in_a_run=False) as (run, terminal):
        result = generate_stage(run, customers=rows, force=force)
        for note in result.notes:
            print(note, file=terminal.err)
        print(run.config.landing_root, file=terminal.out)


@app.command()
def init(
    landing: Annotated[Path, typer.Argument(help="the landing folder: one subfolder of files per source")],
    conf_dir: Annotated[Path, typer.Option("--conf-dir", help="the project's conf folder to write")],
    force: Annotated[bool, typer.Option(help="overwrite an existing starter conf")] = False,
) -> None:
    """Write a starter conf (ingest, clean, validate; train for images in class folders) for landed
    files, from their profile."""
    from deepspark.config import Config
    from deepspark.starter import write_starter

    config = Config()
    config.run.runs_dir = conf_dir.resolve().parent / "runs"
    with quiet_console(config.run.runs_dir / LOGS / "init.log") as terminal:
        try:
            profiles = write_starter(get_spark(config), landing, conf_dir, force)
        except (FileExistsError, FileNotFoundError) as error:
            print(f"error: {error}", file=terminal.err)
            raise typer.Exit(2) from None
        for profile in profiles:
            print(profile.summary(), file=terminal.err)
        print(f"next: deepspark run --conf-dir {conf_dir}", file=terminal.err)
        print(conf_dir / "base", file=terminal.out)


tables_app = typer.Typer(invoke_without_command=True, help="List the Delta tables; compact or vacuum them.")
app.add_typer(tables_app, name="tables")
Names = Annotated[list[str] | None, typer.Argument(help="tables (layer.name); default every table")]


@tables_app.callback()
def tables(ctx: typer.Context, env: Env = "local", sets: Sets = None, conf_dir: ConfDir = None) -> None:
    """List every Delta table with its current version."""
    if ctx.invoked_subcommand is not None:
        return
    with _opened_run("tables", env, sets, conf_dir, in_a_run=False) as (run, terminal):
        listing = run.tables.list()
        if not listing:
            print(f"no tables under {run.tables.root}", file=terminal.out)
        for name, version in listing.items():
            print(f"{name:<32} v{version}", file=terminal.out)


@tables_app.command("compact")
def tables_compact(
    names: Names = None, env: Env = "local", sets: Sets = None, conf_dir: ConfDir = None
) -> None:
    """Rewrite small files into large ones (delta-spark: OPTIMIZE, ZORDER BY tables.zorder)."""
    with _opened_run("tables-compact", env, sets, conf_dir, in_a_run=False) as (run, terminal):
        for name in names or list(run.tables.list()):
            done = run.tables.compact(name)
            change = (
                f"{done.files_removed} files -> {done.files_added}"
                if done.files_removed
                else "already compact"
            )
            print(f"{name:<32} v{done.version}  {change}", file=terminal.out)


@tables_app.command("vacuum")
def tables_vacuum(
    names: Names = None, env: Env = "local", sets: Sets = None, conf_dir: ConfDir = None
) -> None:
    """Delete files no version within tables.vacuum_retention_hours needs."""
    with _opened_run("tables-vacuum", env, sets, conf_dir, in_a_run=False) as (run, terminal):
        for name in names or list(run.tables.list()):
            print(f"{name:<32} {len(run.tables.vacuum(name))} files deleted", file=terminal.out)


@app.command()
def models(
    name: Annotated[str | None, typer.Argument(help="one model's versions; default every model")] = None,
    env: Env = "local",
    sets: Sets = None,
    conf_dir: ConfDir = None,
) -> None:
    """List the registered model versions: data version, training run, validation, metrics, reuse."""
    with _opened_run("models", env, sets, conf_dir, in_a_run=False) as (run, terminal):
        lines = describe_models(run.tables, name)
        if not lines:
            print(
                f"no registered models{f' named {name!r}' if name else ''}; run the train stage",
                file=terminal.out,
            )
        for line in lines:
            print(line, file=terminal.out)


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
    try:
        app(args=argv, prog_name="deepspark")
    except Exception as error:  # none of the commands' own errors: a bug, or the environment
        crash = Path(tempfile.gettempdir()) / f"deepspark-error-{os.getpid()}.log"
        crash.write_text(traceback.format_exc(), encoding="utf-8")
        _say_failure(error, crash, sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
