"""Stage clean: new bronze rows -> silver, upserted on keys; rejected rows -> quarantine.

Input: ``bronze.<dataset>`` rows of batches not cleaned yet (``meta.cleaned_batches``), and
``silver.<dataset>`` for the latest-wins comparison and for referential checks.
Output: ``silver.<dataset>`` (MERGE on ``keys``), ``quarantine.rows``, ``meta.cleaned_batches``.
Parameters: ``clean.datasets`` (keys, order_by and per-column rules; see conf/base/clean.yaml),
``secrets.pii_hmac_key``.

Per dataset: rows bronze flagged (malformed, schema drift) are rejected first; text is
normalized, the source's null tokens become nulls, ``derive`` adds columns, ``split`` makes
delimited text arrays and a ``surrogate_key`` is computed; exact duplicates go; each column is
converted to its type (several date formats allowed) and checked (allowed values, range, nulls,
outliers, references), the first failing rule naming the row's quarantine reason; surviving rows
get nulls imputed and outliers capped, the latest row per key wins (also against silver), and PII
columns are protected.
Every row is accounted for, from counts taken apart from each other: bronze's rows in, the
unique rows (the cached, tagged rows), the rows silver's files hold, the rows the quarantine
merge took, and the rows marked duplicate or superseded;
``rows_in = rows_out + rows_quarantined + rows_deduplicated``; a mismatch fails the run.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pyspark.errors import PySparkException
from pyspark.ml.feature import Imputer
from pyspark.sql import Column, DataFrame, Observation, Window
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, NumericType, StringType

from deepspark.bronze import INGEST_ISSUES, METADATA, PROBLEMS
from deepspark.config import INTEGRAL_TYPES, ColumnRule, ConfigError, DatasetCleaning, one_of
from deepspark.errors import describe
from deepspark.quarantine import KEYS as QUARANTINE_KEYS
from deepspark.quarantine import QUARANTINE, to_quarantine
from deepspark.results import CleanCounts
from deepspark.run import Run, StageFailed, StageResult, skipped
from deepspark.stages.clean.privacy import protect

log = logging.getLogger(__name__)

CLEANED = "meta.cleaned_batches"
WARN_QUARANTINED_SHARE = 0.5  # a batch losing more than this to quarantine is a warning
TOP_RULES = 3
TYPED = "__typed_"  # prefix of the converted copy of a column, next to its text
FATE = "_fate"  # silver | quarantine | duplicate_key | superseded
UNKEPT_METADATA = ["_source_file", "_ingested_at", "_redecoded"]  # in neither silver nor the quarantine
ACCEPTED_FATES = ("silver", "duplicate_key", "superseded")  # the fates of rows no rule rejected
# Type names a pandas or NumPy user writes, and the Spark SQL type each means.
NUMPY_TYPES = {
    "float64": "double",
    "float32": "float",
    "int64": "bigint",
    "int32": "int",
    "int16": "smallint",
    "int8": "tinyint",
    "bool": "boolean",
    "object": "string",
    "str": "string",
    "datetime64": "timestamp",
    "datetime64[ns]": "timestamp",
    "datetime": "timestamp",
}


@dataclass
class Cleaned:
    """What cleaning a batch decided, lazily: ``tagged`` (cached) holds every unique row (exact
    duplicates dropped) with the rule it broke, if any; ``silver`` and ``rejected`` the rows each
    table receives; ``fates`` counts the accepted rows by ``_fate`` (silver, duplicate_key,
    superseded) as ``silver`` is computed, so it is ready once silver is written, with no job of
    its own. ``release()`` frees the cache."""

    tagged: DataFrame
    fates: Observation
    silver: DataFrame
    rejected: DataFrame
    content: list[str]

    def release(self) -> None:
        self.tagged.unpersist()


def content_columns(df: DataFrame) -> list[str]:
    return [c for c in df.columns if c not in METADATA and c not in PROBLEMS]


def normalize_text(df: DataFrame, columns: dict[str, ColumnRule]) -> DataFrame:
    """Apply each string column's ``normalize`` steps (undeclared columns: trim)."""
    out = []
    for field in df.schema:
        column = F.col(f"`{field.name}`")
        if isinstance(field.dataType, StringType) and field.name not in METADATA + PROBLEMS:
            steps = columns[field.name].normalize if field.name in columns else ["trim"]
            column = _normalized(column, steps)
        out.append(column.alias(field.name))
    return df.select(*out)


def null_tokens(df: DataFrame, tokens: list[str]) -> DataFrame:
    """Text columns' ``tokens`` (e.g. NA, N/A) as nulls; compared as the text is after normalize."""
    if not tokens:
        return df
    text = [
        f.name for f in df.schema if isinstance(f.dataType, StringType) and f.name not in METADATA + PROBLEMS
    ]
    return df.withColumns({c: F.when(~F.col(f"`{c}`").isin(*tokens), F.col(f"`{c}`")) for c in text})


def reshape(df: DataFrame, rules: DatasetCleaning) -> DataFrame:
    """``derive`` (SQL over the text columns), ``split`` (delimited text -> array<string>, items
    trimmed, empty ones dropped) and the ``surrogate_key``, in that order, before typing."""
    if rules.derive:
        df = df.withColumns({name: F.expr(expr) for name, expr in rules.derive.items()})
    if rules.split:
        df = df.withColumns({c: split_items(F.col(f"`{c}`"), sep) for c, sep in rules.split.items()})
    if rules.surrogate_key:
        parts = F.struct(*[F.col(f"`{c}`") for c in rules.surrogate_key.columns])
        df = df.withColumn(rules.surrogate_key.column, F.sha2(F.to_json(parts), 256))
    return df


def split_items(text: Column, delimiter: str) -> Column:
    """``"a | b||c"`` split on ``|`` -> ``["a", "b", "c"]``; null stays null."""
    items = F.transform(F.split(text, re.escape(delimiter)), lambda item: F.trim(item))
    return F.filter(items, lambda item: item != "")


def drop_exact_duplicates(df: DataFrame) -> DataFrame:
    return df.dropDuplicates(content_columns(df) + [c for c in PROBLEMS if c in df.columns])


def convert(name: str, rule: ColumnRule) -> Column:
    """Column ``name`` in its declared type, or null where a value does not convert. An integer
    type also takes integral decimals as exports write them (``517.0`` is 517, ``517.5`` is not)."""
    kind = (rule.type or "").lower()
    if kind in ("date", "timestamp") and rule.formats:
        parsed = F.coalesce(*[F.try_to_timestamp(F.col(f"`{name}`"), F.lit(fmt)) for fmt in rule.formats])
        return parsed.cast("date") if kind == "date" else parsed
    if not rule.type:
        return F.col(f"`{name}`")
    raw = F.col(f"`{name}`")
    if rule.decimal == ",":
        raw = comma_decimal(raw)
    converted = raw.try_cast(rule.type)
    if kind in INTEGRAL_TYPES:
        whole = F.nullif(F.regexp_extract(raw, r"^\s*([+-]?[0-9]+)\.0*\s*$", 1), F.lit(""))
        converted = F.coalesce(converted, whole.try_cast(rule.type))
    return converted


def comma_decimal(text: Column) -> Column:
    """``"1.234,5"`` -> ``"1234.5"``: a number written with a decimal comma (dots grouping
    thousands) in Spark's notation; null for any other text, so that it does not convert."""
    written = r"^\s*[+-]?(\d{1,3}(\.\d{3})+|\d+)(,\d+)?\s*$"
    return F.when(text.rlike(written), F.translate(text, ",.", "."))


def tag_row_rules(df: DataFrame, columns: dict[str, ColumnRule], as_of: datetime) -> DataFrame:
    """Add each declared column's converted copy and the first row-local rule the row breaks
    (``_reason``, ``_rule``, ``_stage``); null when it breaks none. A ``now`` bound is ``as_of``."""
    declared = {c: r for c, r in columns.items() if c in df.columns}
    typed = df.select("*", *[convert(c, r).alias(TYPED + c) for c, r in declared.items()])
    checks: list[tuple[Column, str, str]] = []
    if "_ingest_issue" in df.columns:
        checks.append((F.col("_ingest_issue").isNotNull(), "_ingest_issue", "_ingest_rule"))
    for name, rule in declared.items():
        raw, value = F.col(f"`{name}`"), F.col(f"`{TYPED}{name}`")
        if rule.type:
            formats = f" with formats {rule.formats}" if rule.formats else ""
            formats += f" with decimal '{rule.decimal}'" if rule.decimal != "." else ""
            failed = raw.isNotNull() & value.isNull()
            if rule.type.lower().startswith("array<"):  # an item that does not convert is null in it
                failed = failed | (_null_items(value) > _null_items(raw))
            checks.append((failed, "type_coercion", f"{name}: not a {rule.type}{formats}"))
            if rule.type.lower() in ("double", "float"):
                not_finite = F.isnan(value) | value.isin(float("inf"), float("-inf"))
                checks.append((not_finite, "not_finite", f"{name}: NaN or infinite"))
        if rule.allowed is not None:
            checks.append((~value.isin(*rule.allowed), "not_allowed", f"{name}: not one of {rule.allowed}"))
        if rule.range is not None:
            for bound, compare in ((rule.range.min, value.__lt__), (rule.range.max, value.__gt__)):
                if bound is not None:
                    label = "below" if compare == value.__lt__ else "above"
                    shown = f"{bound:g}" if isinstance(bound, float) else bound
                    checks.append(
                        (compare(_bound(bound, rule, as_of)), "out_of_range", f"{name}: {label} {shown}")
                    )
        if rule.nulls == "drop":
            checks.append((value.isNull(), "null", f"{name}: null"))
    reason = F.lit(None).cast("string")
    detail = F.lit(None).cast("string")
    stage = F.lit(None).cast("string")
    for failed, code, text in reversed(checks):
        from_ingest = code == "_ingest_issue"
        failed = F.coalesce(failed, F.lit(False))
        reason = F.when(failed, F.col(code) if from_ingest else F.lit(code)).otherwise(reason)
        detail = F.when(failed, F.col(text) if from_ingest else F.lit(text)).otherwise(detail)
        stage = F.when(failed, F.lit("ingest" if from_ingest else "clean")).otherwise(stage)
    return typed.select("*", reason.alias("_reason"), detail.alias("_rule"), stage.alias("_stage"))


def outlier_bounds(df: DataFrame, columns: dict[str, ColumnRule]) -> dict[str, tuple[float, float]]:
    """Bounds per column with an outlier rule, from rows no rule rejected (a few scalars)."""
    bounds = {}
    valid = df.filter(F.col("_reason").isNull())
    for name, rule in columns.items():
        if rule.outliers is None or name not in df.columns:
            continue
        value = F.col(f"`{TYPED}{name}`").cast("double")
        if rule.outliers.method == "iqr":
            q1, q3 = (
                valid.select(value.alias("v")).approxQuantile("v", [0.25, 0.75], 0.001) or [None, None]
            )[:2]
            if q1 is None:
                continue
            spread = rule.outliers.k * (q3 - q1)
            bounds[name] = (q1 - spread, q3 + spread)
        else:
            stats = valid.agg(F.mean(value).alias("m"), F.stddev(value).alias("s")).first()
            if stats["m"] is not None and stats["s"] is not None:
                bounds[name] = (
                    stats["m"] - rule.outliers.k * stats["s"],
                    stats["m"] + rule.outliers.k * stats["s"],
                )
    return bounds


def tag_outliers(
    df: DataFrame, columns: dict[str, ColumnRule], bounds: dict[str, tuple[float, float]]
) -> DataFrame:
    """Rows outside a quarantine-action outlier bound get reason ``outlier``."""
    for name, (low, high) in bounds.items():
        if columns[name].outliers.action != "quarantine":
            continue
        value = F.col(f"`{TYPED}{name}`")
        text = f"{name}: outside [{low:.6g}, {high:.6g}] ({columns[name].outliers.method})"
        df = _reject_where(df, (value < low) | (value > high), "outlier", text)
    return df


def tag_orphans(df: DataFrame, columns: dict[str, ColumnRule], references: dict[str, DataFrame]) -> DataFrame:
    """Rows whose value is absent from the referenced table get reason ``orphan``."""
    for name, rule in columns.items():
        if not rule.references or name not in df.columns:
            continue
        target = references.get(rule.references)
        value = F.col(f"`{TYPED}{name}`")
        hit = f"__hit_{name}"
        if target is None:
            df = df.withColumn(hit, F.lit(None).cast("boolean"))
        else:
            known = (
                target.select(F.col(rule.referenced_column).alias(f"__ref_{name}"))
                .distinct()
                .withColumn(hit, F.lit(True))
            )
            df = df.join(known, value == F.col(f"__ref_{name}"), "left").drop(f"__ref_{name}")
        orphan = value.isNotNull() & F.col(hit).isNull()
        df = _reject_where(df, orphan, "orphan", f"{name}: not in {rule.references}").drop(hit)
    return df


def typed_rows(df: DataFrame, columns: dict[str, ColumnRule]) -> DataFrame:
    """Accepted rows with each declared column replaced by its converted copy."""
    names = [c for c in df.columns if not c.startswith(TYPED) and c not in ("_reason", "_rule", "_stage")]
    return df.select(
        *[
            F.col(f"`{TYPED}{c}`").alias(c) if c in columns else F.col(f"`{c}`")
            for c in names
            if c not in PROBLEMS
        ]
    )


def cap_outliers(
    df: DataFrame, columns: dict[str, ColumnRule], bounds: dict[str, tuple[float, float]]
) -> DataFrame:
    capped = {}
    for name, (low, high) in bounds.items():
        if columns[name].outliers.action == "cap":
            kind = df.schema[name].dataType
            value = F.col(f"`{name}`")
            # greatest/least skip nulls, so a null would become the bound: leave nulls alone.
            bounded = F.least(F.greatest(value, F.lit(low).cast(kind)), F.lit(high).cast(kind))
            capped[name] = F.when(value.isNotNull(), bounded)
    return df.withColumns(capped) if capped else df


def fill_nulls(df: DataFrame, columns: dict[str, ColumnRule]) -> DataFrame:
    """Constants as given; mean/median/mode of numeric columns through pyspark.ml's Imputer;
    the mode of a text column by a group count (Imputer takes numbers only)."""
    constants = {c: r.fill for c, r in columns.items() if r.nulls == "constant" and c in df.columns}
    if constants:
        df = df.withColumns(
            {c: F.coalesce(F.col(c), F.lit(v).cast(df.schema[c].dataType)) for c, v in constants.items()}
        )
    for strategy in ("mean", "median", "mode"):
        wanted = [c for c, r in columns.items() if r.nulls == strategy and c in df.columns]
        numeric = [c for c in wanted if isinstance(df.schema[c].dataType, NumericType)]
        if numeric:
            df = _impute(df, numeric, strategy)
        for name in [c for c in wanted if c not in numeric]:
            if strategy != "mode":
                raise StageFailed(
                    f"clean: nulls: {strategy} needs a numeric column, {name} is {df.schema[name].dataType}"
                )
            top = (
                df.filter(F.col(name).isNotNull())
                .groupBy(name)
                .count()
                .orderBy(F.desc("count"), name)
                .first()
            )
            if top is not None:
                df = df.withColumn(name, F.coalesce(F.col(name), F.lit(top[name])))
    return df


def _impute(df: DataFrame, columns: list[str], strategy: str) -> DataFrame:
    """Nulls of numeric ``columns`` filled by pyspark.ml's Imputer. A column with no value at all
    (e.g. every row of the batch was rejected) has nothing to fill from and keeps its nulls."""
    imputer = Imputer(strategy=strategy, inputCols=columns, outputCols=[f"__imputed_{c}" for c in columns])
    try:
        model = imputer.fit(df)
    except Exception as failure:
        if "surrogate cannot be computed" not in str(failure):
            raise
        counts = df.agg(*[F.count(c).alias(c) for c in columns]).first()  # only on this rare path
        columns = [c for c in columns if counts[c]]
        if not columns:
            return df
        model = imputer.setInputCols(columns).setOutputCols([f"__imputed_{c}" for c in columns]).fit(df)
    imputed = {c: F.col(f"__imputed_{c}").cast(df.schema[c].dataType) for c in columns}
    return model.transform(df).withColumns(imputed).drop(*[f"__imputed_{c}" for c in columns])


def mark_duplicates(
    df: DataFrame, keys: list[str], order_by: str | None, current: DataFrame | None
) -> DataFrame:
    """``_fate`` = duplicate_key for all but the latest row per key, superseded when silver
    already holds a later row for the key, else silver."""
    order = [F.col(order_by).desc_nulls_last()] if order_by else []
    window = Window.partitionBy(*keys).orderBy(*order, F.col("_row_hash"))
    ranked = df.withColumn("__n", F.row_number().over(window))
    superseded = F.lit(False)
    if current is not None and order_by:
        held = current.select(*keys, F.col(order_by).alias("__held"))
        ranked = ranked.join(held, keys, "left")
        superseded = F.coalesce(F.col(order_by) < F.col("__held"), F.lit(False))
    fate = F.when(F.col("__n") > 1, "duplicate_key").when(superseded, "superseded").otherwise("silver")
    return ranked.withColumn(FATE, fate).drop("__n", "__held")


def clean_dataset(
    bronze: DataFrame,
    rules: DatasetCleaning,
    hmac_key: bytes | None,
    as_of: datetime,
    references: dict[str, DataFrame] | None = None,
    current: DataFrame | None = None,
    null_values: list[str] | tuple[str, ...] = (),
) -> Cleaned:
    """The pure part of the stage: new bronze rows in, every row's fate out. Like pyspark.ml's
    estimators it caches the intermediate its statistics read twice; ``release()`` frees it.
    ``as_of``: what ``now`` means to the rules (the run's moment); ``null_values``: the source's
    tokens for "no value"."""
    # Dropped first: carried through deduplication's shuffle and the cache, they cost bytes on
    # every row (a file's URI each) that no output keeps.
    kept = bronze.drop(*UNKEPT_METADATA)
    normalized = reshape(null_tokens(normalize_text(kept, rules.columns), list(null_values)), rules)
    unique = drop_exact_duplicates(normalized)
    tagged = tag_orphans(
        tag_row_rules(unique, rules.columns, as_of), rules.columns, references or {}
    ).persist()
    bounds = outlier_bounds(tagged, rules.columns)
    checked = tag_outliers(tagged, rules.columns, bounds)
    rejected = checked.filter(F.col("_reason").isNotNull()).withColumn(FATE, F.lit("quarantine"))
    accepted = fill_nulls(
        cap_outliers(
            typed_rows(checked.filter(F.col("_reason").isNull()), rules.columns), rules.columns, bounds
        ),
        rules.columns,
    )
    marked = mark_duplicates(accepted, rules.keys, rules.order_by, current)
    fates = Observation()
    # Counted over every partition by the action that computes silver (a write or a merge's
    # first job: each reads all of it), on the way to the filter below.
    marked = marked.observe(fates, *[F.count_if(F.col(FATE) == fate).alias(fate) for fate in ACCEPTED_FATES])
    silver = protect(
        marked.filter(F.col(FATE) == "silver").drop(FATE),
        rules.columns,
        hmac_key,
        as_of,
    )
    return Cleaned(tagged, fates, silver, rejected, content_columns(bronze))


def clean(run: Run) -> StageResult:
    datasets = run.config.clean.datasets
    if not datasets:
        return skipped("no clean.datasets in conf")
    result = StageResult()
    key = run.config.secrets.pii_hmac_key
    hmac_key = key.get_secret_value().encode() if key else None
    for dataset, rules in run.track("clean (datasets)", datasets.items()):
        counts = clean_one(run, dataset, rules, hmac_key, result.tables)
        result.metrics[dataset] = counts
        if not counts["balanced"]:
            raise StageFailed(f"clean {dataset}: rows do not add up: {counts}")
        result.rows_in += counts["rows_in"]
        result.rows_out += counts["rows_out"]
        result.rows_quarantined += counts["rows_quarantined"]
        result.rows_deduplicated += counts["rows_deduplicated"]
        result.details.append(dataset_line(dataset, counts))
        warning = quarantine_warning(dataset, counts)
        if warning:
            log.warning(warning)
            result.status = "warning"
            result.notes.append(warning)
    return result


def dataset_line(dataset: str, counts: CleanCounts) -> str:
    """``orders: in=3000 out=2890 quarantined=100 deduplicated=10; top: amount: not a int (80)``."""
    line = (
        f"{dataset}: in={counts['rows_in']} out={counts['rows_out']} "
        f"quarantined={counts['rows_quarantined']} deduplicated={counts['rows_deduplicated']}"
    )
    if counts.get("rebuilt"):
        line += f"; rules changed, so all {len(counts['batches'])} batch(es) cleaned again into a new silver"
    top = counts.get("top_rules") or []
    if top:
        line += "; top: " + ", ".join(f"{rule} ({count})" for rule, count in top)
    return line


def quarantine_warning(dataset: str, counts: CleanCounts) -> str | None:
    """A warning when most of a batch went to quarantine: usually a rule that does not fit the
    export (a null token, a number format), not bad data."""
    rows_in, rejected = counts["rows_in"], counts["rows_quarantined"]
    top = counts.get("top_rules") or []
    if not rows_in or rejected / rows_in <= WARN_QUARANTINED_SHARE or not top:
        return None
    reasons = counts.get("quarantine_reasons") or {}
    if max(reasons, key=reasons.get, default=None) in INGEST_ISSUES:  # the files, not the rules
        check = f"ingest.sources.{dataset} (columns or ddl, options such as sep)"
    else:
        check = f"clean.datasets.{dataset} (types, formats, decimal, null_values of the source)"
    return (
        f"clean {dataset}: {rejected} of {rows_in} rows quarantined, {top[0][1]} for '{top[0][0]}'; "
        f"check {check} against quarantine.rows"
    )


def no_rows() -> CleanCounts:
    return CleanCounts(
        rows_in=0,
        rows_out=0,
        rows_quarantined=0,
        rows_deduplicated=0,
        balanced=True,
        exact_duplicates=0,
        key_duplicates=0,
        superseded=0,
        quarantine_reasons={},
        top_rules=[],
        batches=[],
    )


GLOB = re.compile(r"[*?\[]")


def expand_globs(
    rules: DatasetCleaning, bronze_columns: list[str], error: Callable[[str, str], ConfigError]
) -> DatasetCleaning:
    """``rules.columns`` with each glob (``"*_mean"``) replaced by the columns it matches, in the
    data's order: a column named outright keeps its own rule, and of two globs the first wins. A
    glob that matches no column is an error naming its key."""
    if not any(GLOB.search(name) for name in rules.columns):
        return rules
    made = [*rules.derive, *([rules.surrogate_key.column] if rules.surrogate_key else [])]
    available = list(dict.fromkeys(c for c in [*bronze_columns, *made] if c not in METADATA + PROBLEMS))
    named = {name: rule for name, rule in rules.columns.items() if not GLOB.search(name)}
    expanded = dict(named)
    for pattern, rule in rules.columns.items():
        if not GLOB.search(pattern):
            continue
        matches = [c for c in available if fnmatch.fnmatchcase(c, pattern)]
        if not matches:
            raise error(
                f"columns.{pattern}", f"matches no column; expected a glob over: {', '.join(available)}"
            )
        for column in matches:
            expanded.setdefault(column, rule)
    return rules.model_copy(update={"columns": expanded})


def check_rules(bronze: DataFrame, rules: DatasetCleaning, error: Callable[[str, str], ConfigError]) -> None:
    """Before any compute: every column the rules name exists (in bronze or made by derive, split
    or surrogate_key), every expression and type analyses, and an array type has an array to
    convert. ``error(key, problem)`` builds the message, naming the conf key."""
    try:
        shaped = reshape(bronze, rules)
    except PySparkException as failure:
        name = next((n for n, e in rules.derive.items() if not _analyses(bronze, e)), None)
        key = f"derive.{name}" if name else "split"
        raise error(key, f"does not analyse against the bronze columns: {describe(failure)}") from None
    available = [c for c in shaped.columns if c not in METADATA + PROBLEMS]
    named = [("keys", c) for c in rules.keys] + ([("order_by", rules.order_by)] if rules.order_by else [])
    named += [(f"split.{c}", c) for c in rules.split]
    if rules.surrogate_key:
        named += [("surrogate_key.columns", c) for c in rules.surrogate_key.columns]
    named += [(f"columns.{c}", c) for c, r in rules.columns.items() if r.privacy is None]
    for key, column in named:
        if column not in available:
            raise error(
                key,
                f"names column '{column}', which is not in the data; {one_of(column, available)}",
            )
    types = {f.name: f.dataType for f in shaped.schema}
    for column, rule in rules.columns.items():
        if not rule.type or column not in types:
            continue
        if rule.type.lower().startswith("array<") and not isinstance(types[column], ArrayType):
            raise error(
                f"columns.{column}.type",
                f"= {rule.type!r}: '{column}' is {types[column].simpleString()}; to make an array of "
                f"delimited text, add split: {{{column}: '|'}} (with its delimiter)",
            )
        try:
            _ = shaped.select(convert(column, rule)).schema  # analysis only: no job runs
        except PySparkException as failure:
            reason = describe(failure)
            if "UNSUPPORTED_DATATYPE" in reason or "PARSE_SYNTAX_ERROR" in reason:
                spark_name = NUMPY_TYPES.get(rule.type.lower())
                hint = f"did you mean '{spark_name}'? " if spark_name else ""
                raise error(
                    f"columns.{column}.type",
                    f"= {rule.type!r}: not a Spark SQL type; {hint}expected one such as "
                    "int, bigint, double, decimal(12,2), boolean, string, date, timestamp",
                ) from None
            raise error(
                f"columns.{column}.type",
                f"= {rule.type!r}: cannot convert {types[column].simpleString()} to it ({reason})",
            ) from None


def _analyses(df: DataFrame, expression: str) -> bool:
    try:
        _ = df.selectExpr(expression).schema
    except PySparkException:
        return False
    return True


def clean_one(
    run: Run, dataset: str, rules: DatasetCleaning, hmac_key: bytes | None, versions: dict
) -> CleanCounts:
    """Clean the new batches of one dataset; returns its row accounting."""
    bronze_name, silver_name = f"bronze.{dataset}", f"silver.{dataset}"
    source = run.config.ingest.sources.get(dataset)
    if not run.tables.exists(bronze_name):
        if source is not None:  # ingested, but nothing has landed yet: nothing to clean
            return no_rows()
        raise run.config.error(
            f"clean.datasets.{dataset}",
            f"cleans {bronze_name}, which does not exist; expected a source from ingest.sources: "
            f"{', '.join(run.config.ingest.sources) or '(none defined)'}",
        )

    def error(key: str, problem: str) -> ConfigError:
        return run.config.error(f"clean.datasets.{dataset}.{key}", problem)

    whole_bronze = run.tables.read(bronze_name)
    rules = expand_globs(rules, whole_bronze.columns, error)
    check_rules(whole_bronze, rules, error)
    null_values = source.null_values if source else []
    digest = rules_digest(rules, null_values, hmac_key)
    batches, rebuild = _batches_to_clean(run, bronze_name, dataset, digest)
    if not batches:
        return no_rows()
    # Not cached: read twice (its count, then the tagged rows' cache), from files each time.
    bronze = run.tables.read(bronze_name).filter(F.col("_batch_id").isin(batches))
    references = {
        rule.references: run.tables.read(rule.referenced_table)
        for rule in rules.columns.values()
        if rule.references and run.tables.exists(rule.referenced_table)
    }
    current = run.tables.read(silver_name) if run.tables.exists(silver_name) and not rebuild else None
    frames = clean_dataset(bronze, rules, hmac_key, run.as_of, references, current, null_values)

    # Each count comes from a different frame, so a row lost or doubled on the way shows. The
    # unique rows are counted from the tagged cache: its reference joins are to distinct keys,
    # so they neither drop nor repeat a row.
    rows_in = bronze.count()
    unique_rows = frames.tagged.count()
    if current is None:
        written = run.tables.write(
            frames.silver, silver_name, mode="overwrite", evolve_schema=True, replace_schema=rebuild
        )
    else:  # a merge reads its source four times
        silver = frames.silver.persist()
        # Cached by an action of Spark's own, which the fates' Observation hears of: given an
        # empty source, delta-spark's merge runs no such action, and fates.get waited for ever.
        silver.count()
        written = run.tables.merge(silver, silver_name, rules.keys)
        silver.unpersist()
    versions[silver_name] = written.version
    fates = frames.fates.get
    rows_quarantined, reasons, top = 0, {}, []
    if rebuild and run.tables.exists(QUARANTINE):  # what the old rules quarantined goes; bronze keeps it
        mine = (F.col("dataset") == dataset) & F.col("stage").isin("ingest", "clean")
        kept = _rows_without(run, QUARANTINE, mine)
        versions[QUARANTINE] = run.tables.write(kept, QUARANTINE, mode="overwrite").version
    rejected = to_quarantine(frames.rejected, frames.content, dataset, run.run_id).persist()
    by_rule = rejected.groupBy("reason", "rule").count().collect()
    if by_rule:
        for row in by_rule:
            reasons[row["reason"]] = reasons.get(row["reason"], 0) + row["count"]
        top = [(r["rule"], r["count"]) for r in sorted(by_rule, key=lambda r: -r["count"])[:TOP_RULES]]
        # Merged, so a batch cleaned again after a crash quarantines nothing twice.
        quarantine = run.tables.merge(rejected, QUARANTINE, QUARANTINE_KEYS)
        rows_quarantined = quarantine.rows_written
        versions[QUARANTINE] = quarantine.version
    rejected.unpersist()
    frames.release()
    # The commit point: until the batches are recorded under these rules, a rerun cleans them again.
    entries = run.spark.createDataFrame(
        [(dataset, b, run.run_id, digest) for b in batches],
        "dataset string, batch_id string, run_id string, rules string",
    )
    if rebuild:  # one commit: the dataset's entries under the old rules go as the new ones come
        kept = _rows_without(run, CLEANED, F.col("dataset") == dataset)
        entries = kept.unionByName(entries, allowMissingColumns=True)
    mode = "overwrite" if rebuild else "append"
    versions[CLEANED] = run.tables.write(entries, CLEANED, mode=mode, evolve_schema=True).version

    deduplicated = (rows_in - unique_rows) + fates.get("duplicate_key", 0) + fates.get("superseded", 0)
    counts = CleanCounts(
        rows_in=rows_in,
        rows_out=written.rows_written,
        rows_quarantined=rows_quarantined,
        rows_deduplicated=deduplicated,
        balanced=False,  # set below, from these counts
        exact_duplicates=rows_in - unique_rows,
        key_duplicates=fates.get("duplicate_key", 0),
        superseded=fates.get("superseded", 0),
        quarantine_reasons=reasons,
        top_rules=top,
        batches=batches,
        rebuilt=rebuild,
    )
    counts["balanced"] = balanced(counts)
    return counts


def balanced(counts: CleanCounts) -> bool:
    """True when every row in is in silver, the quarantine or deduplicated, each once: false
    when a row was lost or doubled between the counts, or deduplication put out more rows than
    went in."""
    out = counts["rows_out"] + counts["rows_quarantined"] + counts["rows_deduplicated"]
    return counts["exact_duplicates"] >= 0 and counts["rows_in"] == out


def rules_digest(rules: DatasetCleaning, null_values: list[str], hmac_key: bytes | None = None) -> str:
    """What a dataset's silver follows from besides bronze: its rules, the source's null tokens
    and, when a column is keyed-hashed, the PII key (a hash of it: a new key rebuilds silver,
    so no table mixes two keys' hashes)."""
    keyed = any(r.privacy and r.privacy.method == "hmac" for r in rules.columns.values())
    key = hashlib.sha256(hmac_key).hexdigest() if keyed and hmac_key else None
    text = json.dumps([rules.model_dump(mode="json"), sorted(null_values), key], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _batches_to_clean(run: Run, bronze_name: str, dataset: str, digest: str) -> tuple[list[str], bool]:
    """The bronze batch ids to clean for ``dataset`` (a handful of ids, not data), and whether
    silver is rebuilt: every batch when one was cleaned under other rules (or before the rules
    were recorded), else the batches not cleaned yet."""
    batches = {r[0] for r in run.tables.read(bronze_name).select("_batch_id").distinct().collect()}
    if not run.tables.exists(CLEANED):
        return sorted(batches), False
    done = run.tables.read(CLEANED).filter(F.col("dataset") == dataset)
    recorded = F.col("rules") if "rules" in done.columns else F.lit(None).cast("string")
    cleaned = done.select("batch_id", recorded.alias("rules")).collect()
    if any(r.rules != digest for r in cleaned):
        return sorted(batches), True
    return sorted(batches - {r.batch_id for r in cleaned}), False


def _rows_without(run: Run, name: str, condition: Column) -> DataFrame:
    """Table ``name``'s rows that do not meet ``condition`` (null counts as not meeting it)."""
    return run.tables.read(name).filter(~F.coalesce(condition, F.lit(False)))


def _null_items(items: Column) -> Column:
    return F.size(F.filter(items, lambda item: item.isNull()))


def _reject_where(df: DataFrame, failed: Column, reason: str, rule: str) -> DataFrame:
    """Give rows no earlier rule rejected, and that fail ``failed``, this reason and rule."""
    hit = F.col("_reason").isNull() & F.coalesce(failed, F.lit(False))
    return df.withColumns(
        {
            "_reason": F.when(hit, F.lit(reason)).otherwise(F.col("_reason")),
            "_rule": F.when(hit, F.lit(rule)).otherwise(F.col("_rule")),
            "_stage": F.when(hit, F.lit("clean")).otherwise(F.col("_stage")),
        }
    )


def _normalized(column: Column, steps: list[str]) -> Column:
    for step in steps:
        if step == "trim":
            column = F.trim(column)
        elif step == "lower":
            column = F.lower(column)
        elif step == "upper":
            column = F.upper(column)
        elif step == "collapse_spaces":
            column = F.regexp_replace(column, r"\s+", " ")
        elif step == "nfc":
            column = _nfc(column)
    return column


def _nfc(column: Column) -> Column:
    # Spark has no built-in Unicode normalization; a vectorized pandas UDF is the cheapest way.
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("string")
    def nfc(values):
        import unicodedata

        return values.map(lambda v: unicodedata.normalize("NFC", v) if isinstance(v, str) else v)

    return nfc(column)


def _bound(bound: float | str, rule: ColumnRule, as_of: datetime) -> Column:
    kind = (rule.type or "double").lower()
    if bound == "now":
        return F.lit(as_of).cast("date" if kind == "date" else "timestamp")
    return F.lit(bound).cast(kind)
