"""``deepspark init``: a starter conf for landed files, so a project's first run takes minutes.

For each folder under the landing folder (one source each) it reads a sample of the first file
to find the format and the CSV dialect (delimiter, header, encoding, quoted values spanning
lines) or the JSON record schema, then profiles every file of the source with Spark: per
column its non-null and distinct counts, whether every value is an integer (``517.0``
included), a number, a date or a timestamp, and which common null tokens (``NA``, ``N/A``,
``null``, ...) occur. From that it writes ``ingest.yaml`` (the contract), ``clean.yaml`` (types,
nulls and a key: a column found unique and never null, else a surrogate key over every column)
and ``validate.yaml`` (a Great Expectations suite: row count, not-null, unique key, observed
numeric ranges as warnings). Great Expectations 1.x has no profiler any more (its rule-based
profilers and data assistants were removed in 1.0), so the profile is Spark's.

Everything written is a starting point to read and edit: the file says so at its top.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from deepspark.stages.clean.stage import comma_decimal

NULL_TOKENS = ["NA", "N/A", "n/a", "NaN", "null", "NULL", "None", "-", "?"]
DATE_FORMATS = ["yyyy-MM-dd", "dd/MM/yyyy", "MM/dd/yyyy", "dd.MM.yyyy"]
TIMESTAMP_FORMATS = ["yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ssXXX"]
SAMPLE_BYTES = 1 << 16
HEADER = "# Written by `deepspark init` from the files it found: a starting point, read and edit it.\n"


@dataclass
class Column:
    name: str
    type: str | None = None  # a Spark SQL type; None: text
    formats: list[str] = field(default_factory=list)
    decimal: str = "."  # "," for numbers written 1.234,5
    nulls: int = 0
    distinct: int = 0
    minimum: float | None = None
    maximum: float | None = None


@dataclass
class SourceProfile:
    name: str
    format: str
    rows: int
    columns: list[Column]
    options: dict[str, str] = field(default_factory=dict)
    ddl: str | None = None
    null_values: list[str] = field(default_factory=list)
    key: str | None = None

    def source(self) -> dict:
        entry: dict = {"format": self.format, "path": self.name}
        if self.format == "csv":
            entry["columns"] = [c.name for c in self.columns]
        if self.ddl:
            entry["ddl"] = self.ddl
        if self.options:
            entry["options"] = self.options
        if self.null_values:
            entry["null_values"] = self.null_values
        return entry

    def cleaning(self) -> dict:
        columns = {}
        for column in self.columns:
            rule: dict = {}
            if column.type:
                rule["type"] = column.type
            if column.formats:
                rule["formats"] = column.formats
            if column.decimal != ".":
                rule["decimal"] = column.decimal
            if column.name == self.key:
                rule["nulls"] = "drop"
            if rule:
                columns[column.name] = rule
        keyed = (
            {"keys": [self.key]}
            if self.key
            else {"surrogate_key": {"column": f"{self.name}_id", "columns": [c.name for c in self.columns]}}
        )
        return {**keyed, "columns": columns}

    def suite(self) -> list[dict]:
        expectations = [
            {"expectation": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
        ]
        key = self.key or f"{self.name}_id"
        expectations.append({"expectation": "expect_column_values_to_be_unique", "kwargs": {"column": key}})
        for column in self.columns:
            if column.nulls == 0 and column.name != self.key:
                expectations.append(
                    {"expectation": "expect_column_values_to_not_be_null", "kwargs": {"column": column.name}}
                )
            if column.minimum is not None and column.type in ("int", "bigint", "double"):
                expectations.append(
                    {
                        "expectation": "expect_column_values_to_be_between",
                        "kwargs": {
                            "column": column.name,
                            "min_value": column.minimum,
                            "max_value": column.maximum,
                        },
                        "severity": "warning",
                    }
                )
        return expectations


def sniff_csv(sample: bytes) -> dict[str, str]:
    """Reader options for a CSV sample: its delimiter, ``comment: "#"`` when a line starting
    with ``#`` comes before the header (a vendor's note), and multiLine when a quoted value spans
    lines. (Bytes that are not UTF-8 need no option: ingest decodes them value by value.)"""
    text = sample.decode("latin-1") if not _is_utf8(sample) else sample.decode("utf-8")
    text = text.removeprefix("\ufeff")
    options: dict[str, str] = {}
    lines = text.splitlines(keepends=True)
    if next((line for line in lines if line.strip()), "").startswith("#"):
        options["comment"] = "#"
        text = "".join(line for line in lines if not line.startswith("#"))
    dialect = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    if dialect.delimiter != ",":
        options["sep"] = dialect.delimiter
    records = list(csv.reader(io.StringIO(text.rsplit("\n", 1)[0]), dialect))
    if any("\n" in value for record in records for value in record):
        options["multiLine"] = "true"
    return options


def _is_utf8(sample: bytes) -> bool:
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as cut:
        return cut.start >= len(sample) - 3  # only a character cut at the sample's end
    return True


def profile_frame(df: DataFrame) -> tuple[int, list[Column], list[str]]:
    """Rows, per-column profiles (all values read as text) and the null tokens found, in one pass."""
    tokens = F.array(*[F.lit(t) for t in NULL_TOKENS])
    aggregates = [F.count(F.lit(1)).alias("rows")]
    for i, name in enumerate(df.columns):
        raw = F.trim(F.col(f"`{name}`"))
        value = F.when(~F.array_contains(tokens, raw) & (raw != ""), raw)
        number = value.try_cast("double")
        comma = comma_decimal(value).try_cast("double")
        whole = F.nullif(F.regexp_extract(value, r"^([+-]?[0-9]+)(\.0*)?$", 1), F.lit(""))
        aggregates += [
            F.count(value).alias(f"n{i}"),
            F.approx_count_distinct(value).alias(f"d{i}"),
            F.count(number).alias(f"num{i}"),
            F.count(whole).alias(f"int{i}"),
            F.min(number).alias(f"min{i}"),
            F.max(number).alias(f"max{i}"),
            F.count(comma).alias(f"comma{i}"),
            F.min(comma).alias(f"cmin{i}"),
            F.max(comma).alias(f"cmax{i}"),
            F.collect_set(F.when(F.array_contains(tokens, raw), raw)).alias(f"tok{i}"),
        ]
        for j, fmt in enumerate(DATE_FORMATS + TIMESTAMP_FORMATS):
            aggregates.append(F.count(F.try_to_timestamp(value, F.lit(fmt))).alias(f"t{i}_{j}"))
    row = df.agg(*aggregates).first()
    columns, found_tokens = [], set()
    for i, name in enumerate(df.columns):
        present = row[f"n{i}"]
        column = Column(name, nulls=row["rows"] - present, distinct=row[f"d{i}"])
        found_tokens |= set(row[f"tok{i}"])
        if present and row[f"int{i}"] == present:
            column.type = "bigint" if max(abs(row[f"min{i}"]), abs(row[f"max{i}"])) >= 2**31 else "int"
        elif present and row[f"num{i}"] == present:
            column.type = "double"
        elif present and row[f"comma{i}"] == present:
            column.type, column.decimal = "double", ","
        elif present:
            parsed = [(row[f"t{i}_{j}"], fmt) for j, fmt in enumerate(DATE_FORMATS + TIMESTAMP_FORMATS)]
            fitting = [fmt for count, fmt in parsed if count == present]
            if fitting:
                column.type = "date" if fitting[0] in DATE_FORMATS else "timestamp"
                column.formats = [fitting[0]]
        if column.type in ("int", "bigint", "double"):
            low, high = ("cmin", "cmax") if column.decimal == "," else ("min", "max")
            column.minimum, column.maximum = row[f"{low}{i}"], row[f"{high}{i}"]
        columns.append(column)
    return row["rows"], columns, sorted(found_tokens)


def find_key(df: DataFrame, rows: int, columns: list[Column]) -> str | None:
    """The first column whose values look unique (approximately) and are never null, checked
    exactly: a key that is not unique would merge records."""
    for column in columns:
        unique_enough = column.nulls == 0 and rows and column.distinct >= 0.97 * rows
        if unique_enough and df.select(f"`{column.name}`").distinct().count() == rows:
            return column.name
    return None


def profile_source(spark: SparkSession, folder: Path) -> SourceProfile | None:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith((".", "_")))
    if not files:
        return None
    suffix = files[0].suffix.lower().lstrip(".")
    paths = [str(p) for p in files]
    if suffix in ("csv", "tsv", "txt"):
        options = sniff_csv(files[0].read_bytes()[:SAMPLE_BYTES])
        df = spark.read.options(header="true", **options).csv(paths)
        rows, columns, tokens = profile_frame(df)
        profile = SourceProfile(folder.name, "csv", rows, columns, options, null_values=tokens)
    elif suffix in ("json", "jsonl", "ndjson"):
        inferred = spark.read.json(paths)
        ddl = ", ".join(f"{f.name} {f.dataType.simpleString()}" for f in inferred.schema.fields)
        text = inferred.select(*[F.col(f"`{c}`").cast("string").alias(c) for c in inferred.columns])
        rows, columns, tokens = profile_frame(text)
        for column, spark_field in zip(columns, inferred.schema.fields, strict=True):
            if spark_field.dataType.simpleString() != "string":
                column.type, column.formats = None, []  # JSON already typed it
        profile = SourceProfile(folder.name, "json", rows, columns, ddl=ddl, null_values=tokens)
        df = text
    elif suffix == "parquet":
        df = spark.read.parquet(*paths)
        rows = df.count()
        columns = [Column(f.name) for f in df.schema.fields]
        profile = SourceProfile(folder.name, "parquet", rows, columns)
    else:
        return None
    profile.key = find_key(df, profile.rows, profile.columns)
    return profile


def write_starter(
    spark: SparkSession, landing: Path, conf_dir: Path, force: bool = False
) -> list[SourceProfile]:
    """Profile each source folder under ``landing`` and write the starter conf under
    ``conf_dir/base``; returns the profiles. Existing files are kept unless ``force``."""
    base = conf_dir / "base"
    targets = [base / name for name in ("ingest.yaml", "clean.yaml", "validate.yaml")]
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        raise FileExistsError(f"{existing[0]} exists; pass --force to overwrite the starter conf")
    folders = sorted(f for f in landing.iterdir() if f.is_dir()) if landing.is_dir() else []
    profiles = [profile for profile in map(lambda f: profile_source(spark, f), folders) if profile]
    if not profiles:
        raise FileNotFoundError(f"{landing}: no source folders with csv, json or parquet files found")
    project = conf_dir.resolve().parent
    data_root = project / "data"
    landing_dir = os.path.relpath(landing.resolve(), data_root)
    ingest = {"landing_dir": str(landing_dir), "sources": {p.name: p.source() for p in profiles}}
    clean = {"datasets": {p.name: p.cleaning() for p in profiles}}
    validate = {"suites": {p.name: p.suite() for p in profiles}}
    base.mkdir(parents=True, exist_ok=True)
    for path, section in zip(targets, (ingest, clean, validate), strict=True):
        text = yaml.safe_dump(section, sort_keys=False, width=100, default_flow_style=None)
        path.write_text(HEADER + text, encoding="utf-8")
    return profiles
