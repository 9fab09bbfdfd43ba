"""The configuration documents itself: every key is described, the checked-in key reference is
the generated one, and `config show` names where each value came from without leaking secrets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from deepspark.config import load_config
from deepspark.config.reference import json_schema, key_reference, keys, resolved

REPO = Path(__file__).resolve().parents[2]


def test_every_key_has_a_description():
    undescribed = [key.path for key in keys() if not key.description]
    assert undescribed == []


def test_the_json_schema_describes_every_property_of_every_section():
    schema = json_schema()
    sections = [schema, *schema["$defs"].values()]
    bare = [
        f"{section.get('title')}.{name}"
        for section in sections
        for name, prop in section.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert bare == [] and "validate" in schema["properties"]


def test_docs_config_md_is_the_generated_reference():
    checked_in = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    assert checked_in == key_reference(), "docs/config.md is stale: run `deepspark config docs`"


def test_the_reference_names_user_chosen_keys_and_required_ones():
    text = key_reference()
    assert "| `ingest.sources.<name>.format` |" in text
    assert "| `validate.suites.<name>[].expectation` | text | required |" in text


def test_show_with_sources_names_the_file_or_override_behind_each_value(tmp_path):
    config = load_config(
        overrides=["spark.shuffle_partitions=3"], environ={"DEEPSPARK_SECRET_PII_HMAC_KEY": "not-for-eyes"}
    )
    shown = resolved(config, sources=True)
    lines = {line.split(":")[0]: line for line in shown.splitlines()}
    assert lines["spark.shuffle_partitions"].endswith("# --set spark.shuffle_partitions=3")
    assert lines["spark.app_name"].endswith("conf/base/spark.yaml")
    assert "environment variable DEEPSPARK_SECRET_PII_HMAC_KEY" in lines["secrets.pii_hmac_key"]
    assert "not-for-eyes" not in shown and "not-for-eyes" not in resolved(config)


def test_the_cli_prints_a_schema_that_parses_and_a_bad_key_as_one_line():
    cli = [sys.executable, "-m", "deepspark.cli", "config"]
    schema = subprocess.run([*cli, "schema"], capture_output=True, text=True, check=True)
    assert json.loads(schema.stdout)["title"] == "deepspark configuration"
    bad = subprocess.run([*cli, "show", "--set", "spark.driver_memroy=4g"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stdout == ""
    assert "unknown key 'spark.driver_memroy'; did you mean 'driver_memory'? expected one of:" in bad.stderr
    assert "Traceback" not in bad.stderr
