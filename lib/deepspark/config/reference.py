"""The configuration shown to a user, all of it from :mod:`deepspark.config.schema`:

* :func:`json_schema`: the JSON Schema of every key (``deepspark config schema``), descriptions
  included, for editors and tools;
* :func:`key_reference`: the Markdown key reference checked in as ``docs/config.md``
  (``deepspark config docs`` writes it; a test fails when it is stale);
* :func:`resolved`: a loaded config's values, secrets redacted, each with the file or
  ``--set`` that gave it (``deepspark config show [--sources]``).
"""

from __future__ import annotations

import json
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from deepspark.config.schema import Config

SECTION_FILES = "conf/base/<section>.yaml"


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the whole configuration, by the names used in YAML."""
    schema = Config.model_json_schema(by_alias=True, mode="validation")
    schema["title"] = "deepspark configuration"
    schema["description"] = (
        f"One section per file ({SECTION_FILES}), overlays in conf/<env>/, overrides by --set."
    )
    return schema


@dataclass(frozen=True)
class Key:
    """One documented key: its dotted path (``<name>`` where the user names it), type, default
    and description."""

    path: str
    type: str
    default: str | None  # None: required; "": a section, whose keys have their own defaults
    description: str


def keys(model: type[BaseModel] = Config, prefix: str = "") -> Iterator[Key]:
    """Every key under ``model``, depth first, in declaration order."""
    for name, field in model.model_fields.items():
        path = f"{prefix}{field.alias or name}"
        yield Key(
            path, _type_name(field.annotation), _default(field), " ".join((field.description or "").split())
        )
        nested, shape = _nested(field.annotation)
        if nested is not None:
            yield from keys(nested, path + shape)


def key_reference() -> str:
    """``docs/config.md``: a table of keys per section."""
    lines = [
        "# Configuration keys",
        "",
        "Generated from `lib/deepspark/config/schema.py` by `deepspark config docs`; a test fails",
        "when it is out of date. Each section is one file, `conf/base/<section>.yaml`; `conf/<env>/`",
        "overlays it and `--set section.key=value` overrides it. `<name>` is a name you choose.",
        "`deepspark config show --sources` prints the resolved values and where each came from.",
        "",
    ]
    for name, field in Config.model_fields.items():
        section = field.alias or name
        model, _ = _nested(field.annotation)
        lines += [f"## `{section}`", "", " ".join((field.description or "").split()), ""]
        lines += ["| key | type | default | description |", "|---|---|---|---|"]
        for key in keys(model, section + "."):
            default = "required" if key.default is None else f"`{key.default}`" if key.default else ""
            cells = [f"`{key.path}`", key.type, default, key.description]
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def resolved(config: Config, sources: bool = False) -> str:
    """The loaded config as YAML, secrets redacted; with ``sources``, one ``key: value`` line per
    leaf followed by the file (or ``--set``) it came from."""
    data = config.redacted()
    if not sources:
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    rows = [(key, json.dumps(value, default=str), config.source_of(key)) for key, value in _leaves(data)]
    width = min(max(len(key) + len(value) for key, value, _ in rows) + 4, 72)
    return "\n".join(f"{f'{key}: {value}':<{width}}  # {source}" for key, value, source in rows) + "\n"


def _leaves(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(data, dict) and data:
        for key, value in data.items():
            yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, data


def _nested(annotation: Any) -> tuple[type[BaseModel] | None, str]:
    """The section type a field holds, and the path from the field to its keys: ``.`` for one
    section, ``.<name>.`` through a mapping of names to it, ``[].`` through a list."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, "."
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType):
        for arg in args:
            found = _nested(arg)
            if found[0] is not None:
                return found
    if origin in (dict, list) and args:
        inner, path = _nested(args[-1])
        return inner, (".<name>" if origin is dict else "[]") + path
    return None, "."


def _type_name(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return " | ".join(f"`{arg}`" for arg in args)
    if origin in (Union, types.UnionType):
        named = [_type_name(arg) for arg in args if arg is not type(None)]
        return " or ".join(named) + (" or null" if type(None) in args else "")
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return f"map of {_type_name(args[0])} to {_type_name(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    if annotation is Any:
        return "any value"
    return {"str": "text", "int": "integer", "float": "number", "bool": "boolean", "Path": "path"}.get(
        getattr(annotation, "__name__", str(annotation)), getattr(annotation, "__name__", str(annotation))
    )


def _default(field: FieldInfo) -> str | None:
    if field.default_factory is not None:
        value = field.default_factory()
    elif field.default is PydanticUndefined:
        return None
    else:
        value = field.default
    if isinstance(value, BaseModel):
        return ""
    return json.dumps(value, default=str)
