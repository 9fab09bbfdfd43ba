"""Loads the configuration: conf/base/*.yaml, an environment overlay, ``--set`` overrides, secrets.

Each YAML file in ``conf/base/`` holds one section (``spark.yaml`` -> ``config.spark``).
An overlay folder (``conf/local/`` or ``conf/cluster/``; ``local`` may be absent) deep-merges
over base, then
``--set section.key=value`` overrides (values parsed as YAML scalars). The result is
validated once into :class:`~deepspark.config.schema.Config`; unknown keys and wrong types raise
:class:`ConfigError` naming the file that set the key, the key and the expected value. Where
each value came from is kept (``Config.source_of``).

Relative paths (``run.data_root``, ``run.runs_dir``, ``spark.scratch_dir``) are relative to the
project folder, the conf folder's parent, so ``--conf-dir examples/x/conf`` keeps its tables in
``examples/x/data`` wherever the command runs.

Secrets never come from the tracked YAML: only from ``DEEPSPARK_SECRET_<NAME>`` environment
variables or the git-ignored ``conf/local/secrets.yaml``. They are ``SecretStr`` and so are
redacted whenever the config is dumped or logged.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from deepspark.config.schema import Config, ConfigError, ModelConfig, one_of

SECRETS_FILE = "secrets.yaml"
DEFAULT_ENV = "local"  # the overlay a project may leave out
SECRET_ENV_PREFIX = "DEEPSPARK_SECRET_"
DEFAULT_CONF_DIR = Path(__file__).resolve().parents[3] / "conf"

SECTIONS = {(field.alias or name) for name, field in Config.model_fields.items() if name != "secrets"}


def load_config(
    conf_dir: Path | str | None = None,
    env: str | None = "local",
    overrides: list[str] | tuple[str, ...] = (),
    environ: dict[str, str] | None = None,
) -> Config:
    """Load base + ``env`` overlay + ``overrides`` (``section.key=value``) + secrets into a Config."""
    conf_dir = Path(conf_dir or os.environ.get("DEEPSPARK_CONF_DIR") or DEFAULT_CONF_DIR)
    environ = os.environ if environ is None else environ
    if not (conf_dir / "base").is_dir():
        raise ConfigError(f"{conf_dir}: no 'base' folder with the stage YAML files was found")

    merged: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    layers = [conf_dir / "base"] + ([conf_dir / env] if env and (conf_dir / env).is_dir() else [])
    if env and env != DEFAULT_ENV and not (conf_dir / env).is_dir():
        raise ConfigError(f"{conf_dir / env}: the overlay folder for environment '{env}' is missing")
    for folder in layers:
        for path in sorted(folder.glob("*.yaml")):
            if path.name == SECRETS_FILE:
                continue
            section = path.stem
            if section not in SECTIONS:
                raise ConfigError(
                    f"{path}: unknown section file '{path.name}'; "
                    f"expected one of {', '.join(sorted(s + '.yaml' for s in SECTIONS))}"
                )
            _merge(merged, {section: _read_yaml(path)}, origin, str(path), ())

    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected section.key=value")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            raise ConfigError(
                f"--set {item!r}: the value is not valid YAML ({yaml_problem(error)})"
            ) from error
        parts = tuple(key.strip().split("."))
        if parts[0] == "secrets":
            raise ConfigError(
                f"--set {item!r}: secrets come only from {SECRET_ENV_PREFIX}* "
                f"environment variables or conf/<env>/{SECRETS_FILE}"
            )
        nested: Any = value
        for part in reversed(parts):
            nested = {part: nested}
        _merge(merged, nested, origin, f"--set {item}", ())

    merged["secrets"] = _read_secrets(conf_dir, env, environ, origin)
    try:
        config = Config.model_validate(merged)
    except ValidationError as error:
        raise ConfigError(_describe(error, origin)) from None
    config._origin = origin
    _anchor_paths(config, conf_dir.resolve().parent)
    _check_references(config)
    return config


def _anchor_paths(config: Config, project: Path) -> None:
    """Relative folders become folders of the project (the conf folder's parent)."""
    for section, name in (("run", "data_root"), ("run", "runs_dir"), ("spark", "scratch_dir")):
        holder = getattr(config, section)
        value = getattr(holder, name)
        if value is not None and not Path(value).is_absolute() and "://" not in str(value):
            setattr(holder, name, project / value)


def _check_references(config: Config) -> None:
    """Names that point across sections: analytics reads the feature sets that features defines."""
    sets = config.features.sets
    known = ", ".join(sorted(sets)) or "(none defined)"
    uses = [("analytics.kmeans.features", config.analytics.kmeans)] + [
        (f"analytics.trees.{name}.features", tree) for name, tree in config.analytics.trees.items()
    ]
    for key, section in uses:
        if section is None:
            continue
        if section.features not in sets:
            raise config.error(
                key, f"= {section.features!r}: expected a feature set from features.sets: {known}"
            )
        if key.startswith("analytics.trees.") and not sets[section.features].label:
            raise config.error(
                key,
                f"= {section.features!r}: a tree needs a feature set with a label; "
                f"set features.sets.{section.features}.label",
            )

    _check_baskets(config)
    views = config.features.views
    for name, spec in sets.items():
        if spec.input not in views and spec.input.split(".")[0] not in ("bronze", "silver", "gold"):
            raise config.error(
                f"features.sets.{name}.input",
                f"= {spec.input!r}: expected a table (silver.<dataset>) or a view from features.views: "
                f"{', '.join(sorted(views)) or '(none defined)'}",
            )
    for name, sql in views.items():
        if "{" not in sql:
            raise config.error(
                f"features.views.{name}",
                "names no table; expected SQL with its tables in braces, e.g. SELECT * FROM {silver.orders}",
            )

    _check_models(config)
    models = ", ".join(sorted(config.train.models)) or "(none defined)"
    for name, spec in config.train.predict.items():
        if spec.model not in config.train.models:
            raise config.error(
                f"train.predict.{name}.model",
                f"= {spec.model!r}: expected a model from train.models: {models}",
            )


ANY = ("images", "text", "sequences")
READS = {"cnn": ("images",), "rnn": ("text", "sequences"), "mlp": ANY, "custom": ANY}


def _check_models(config: Config) -> None:
    """Each model names a dataset of a kind it can read."""
    datasets = config.train.datasets
    named = ", ".join(sorted(datasets)) or "(none defined)"
    for name, spec in config.train.models.items():
        dataset = datasets.get(spec.dataset)
        if dataset is None:
            raise config.error(
                f"train.models.{name}.dataset",
                f"= {spec.dataset!r}: expected a dataset from train.datasets: {named}",
            )
        if dataset.kind not in READS[spec.kind]:
            fits = [n for n, d in datasets.items() if d.kind in READS[spec.kind]]
            raise config.error(
                f"train.models.{name}.dataset",
                f"= {spec.dataset!r}: a {spec.kind} model reads {' or '.join(READS[spec.kind])}, "
                f"{spec.dataset} is {dataset.kind}; expected one of: {', '.join(fits) or '(none defined)'}",
            )
        _check_monitor(config, name, spec, dataset.task)


MONITORS = {
    "classification": ("val_accuracy", "val_loss", "accuracy", "loss"),
    "regression": ("val_loss", "val_mae", "loss", "mae"),
}


def _check_monitor(config: Config, name: str, spec: ModelConfig, task: str) -> None:
    """Early stopping watches a metric the model's head has: a regressor has no accuracy."""
    stopping = spec.early_stopping
    if stopping is not None and stopping.monitor not in MONITORS[task]:
        raise config.error(
            f"train.models.{name}.early_stopping.monitor",
            f"= {stopping.monitor!r}: dataset {spec.dataset!r} is a {task} dataset; "
            f"expected one of {', '.join(MONITORS[task])}",
        )


def _check_baskets(config: Config) -> None:
    """Before any job: the rules' items column must become an array in clean. Known from the
    conf when the input is a cleaned CSV dataset (every CSV value is text until clean types it)."""
    rules = config.analytics.rules
    if rules is None or not rules.input.startswith("silver."):
        return
    dataset = rules.input.removeprefix("silver.")
    cleaning, source = config.clean.datasets.get(dataset), config.ingest.sources.get(dataset)
    if cleaning is None or source is None or source.format != "csv":
        return
    rule = cleaning.columns.get(rules.items)
    if rules.items not in cleaning.split and not (rule and (rule.type or "").lower().startswith("array<")):
        raise config.error(
            "analytics.rules.items",
            f"= {rules.items!r}: {rules.input}.{rules.items} is text (a CSV column); expected an array: "
            f"add clean.datasets.{dataset}.split: {{{rules.items}: '|'}} (with its delimiter)",
        )


def yaml_problem(error: yaml.YAMLError) -> str:
    """PyYAML's error on one line: where, what, and for a bare ``*`` (read as an alias) the fix."""
    mark = getattr(error, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    alias = re.search(r"undefined alias '([^']*)'", problem)
    if alias:
        problem += f' (a name starting with *, such as a glob, must be quoted: "*{alias[1]}")'
    return where + problem


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {yaml_problem(error)}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping of keys to values at the top level, found {type(data).__name__}"
        )
    if "secrets" in data or any("secret" in str(k).lower() for k in data):
        raise ConfigError(
            f"{path}: secrets do not belong in tracked config; set "
            f"{SECRET_ENV_PREFIX}<NAME> or conf/local/{SECRETS_FILE}"
        )
    return data


def _read_secrets(conf_dir: Path, env: str | None, environ, origin) -> dict[str, Any]:
    secrets: dict[str, Any] = {}
    if env:
        path = conf_dir / env / SECRETS_FILE
        if path.is_file():
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if not isinstance(data, dict):
                raise ConfigError(f"{path}: expected a mapping of secret names to values")
            for key, value in data.items():
                secrets[key] = value
                origin[("secrets", key)] = str(path)
    for name, value in environ.items():
        if name.startswith(SECRET_ENV_PREFIX):
            key = name[len(SECRET_ENV_PREFIX) :].lower()
            secrets[key] = value
            origin[("secrets", key)] = f"environment variable {name}"
    return secrets


def _merge(into: dict, new: dict, origin: dict, source: str, prefix: tuple[str, ...]) -> None:
    for key, value in new.items():
        path = (*prefix, str(key))
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value, origin, source, path)  # keys not in `new` keep their origin
            continue
        into[key] = value
        for known in [k for k in origin if k[: len(path)] == path]:
            del origin[known]
        _record_origin(value, origin, source, path)


def _record_origin(value: Any, origin: dict, source: str, path: tuple[str, ...]) -> None:
    origin[path] = source
    if isinstance(value, dict):
        for key, inner in value.items():
            _record_origin(inner, origin, source, (*path, str(key)))


def _describe(error: ValidationError, origin: dict[tuple[str, ...], str]) -> str:
    lines = []
    for problem in error.errors():
        loc = tuple(str(part) for part in problem["loc"])
        loc = tuple("validate" if part == "validate_" else part for part in loc)
        source = next((origin[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in origin), "defaults")
        key = ".".join(loc)
        if problem["type"] == "extra_forbidden":
            model = _model_at(loc[:-1])
            names = [field.alias or name for name, field in model.model_fields.items()] if model else ["?"]
            lines.append(f"{source}: unknown key '{key}'; {one_of(loc[-1], sorted(names))}")
        elif isinstance(problem.get("input"), dict):  # a section's own check: name every file in it
            sources = dict.fromkeys(source for k, source in origin.items() if k[: len(loc)] == loc)
            message = problem["msg"].removeprefix("Value error, ")
            lines.append(f"{' + '.join(sources) or source}: key '{key}': {message}")
        else:
            got = problem.get("input")
            if problem["type"] == "value_error":  # our validators' own words
                lines.append(
                    f"{source}: key '{key}' = {got!r}: {problem['msg'].removeprefix('Value error, ')}"
                )
            else:
                lines.append(f"{source}: key '{key}' = {got!r}: expected {problem['msg'].lower()}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _model_at(loc: tuple[str, ...]) -> type[BaseModel] | None:
    model: Any = Config
    skip_mapping_key = False
    for part in loc:
        if skip_mapping_key:  # the user's own name in a dict[str, Section], e.g. a source name
            skip_mapping_key = False
            continue
        fields = {(f.alias or n): f for n, f in model.model_fields.items()}
        field = fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
            continue
        args = getattr(annotation, "__args__", ())
        nested = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
        if not nested:
            return None
        model = nested[-1]
        skip_mapping_key = getattr(annotation, "__origin__", None) is dict
    return model
