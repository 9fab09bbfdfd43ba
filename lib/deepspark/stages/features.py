"""Stage features: silver -> gold feature tables, each made by one fitted pyspark.ml Pipeline.

Input: each set's ``input``: a table (``silver.<dataset>``), or a view from ``features.views``:
SQL over tables named in braces (``{silver.orders}``), each read at a pinned version.
Output: ``gold.<set>_features`` (key, label, the source columns in their own units, ``features``
and ``features_scaled`` as arrays) and the fitted PipelineModel in
``<data_root>/models/features/<set>/<fingerprint>/``, whose manifest names the input versions it
was fitted on (the view's SQL too) and the feature names, slot by slot.
Parameters: ``features.views``, ``features.sets`` (conf/base/features.yaml), ``run.seed``.

A set is fitted once per (config, input versions): a run over the same silver versions loads
the saved model instead of fitting again, so gold is reproducible from its manifest.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import (
    IDF,
    Bucketizer,
    CountVectorizer,
    CountVectorizerModel,
    HashingTF,
    Imputer,
    OneHotEncoder,
    RegexTokenizer,
    SQLTransformer,
    StandardScaler,
    StopWordsRemover,
    StringIndexer,
    StringIndexerModel,
    VectorAssembler,
    Word2Vec,
)
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import NumericType, StringType

from deepspark.config import Config, FeatureSet, one_of
from deepspark.lineage import LATEST, fingerprint, model_uri, read_latest, read_manifest, save_model
from deepspark.run import Run, StageResult, skipped
from deepspark.tables import Tables

VIEW_TABLE = re.compile(r"\{((?:bronze|silver|gold)\.[A-Za-z_][A-Za-z0-9_]*)\}")
ASSEMBLED, SCALED = "_f_assembled", "_f_scaled"
TEXT, TOKENS, WORDS, TEXT_VECTOR = "_f_text", "_f_tokens", "_f_words", "_f_text_vector"


@dataclass(frozen=True)
class FeatureLayout:
    """What each slot of ``features`` holds: its readable name and its kind (numeric, indicator
    for one-hot slots, text for word weights)."""

    names: list[str]
    kinds: list[str]

    def as_dict(self) -> dict[str, list[str]]:
        return {"names": self.names, "kinds": self.kinds}


# --- pure transforms -------------------------------------------------------------------------


def view_tables(sql: str) -> list[str]:
    """The tables a view's SQL names in braces, in order of first use."""
    return list(dict.fromkeys(VIEW_TABLE.findall(sql)))


def query_view(spark, sql: str, tables: dict[str, DataFrame]) -> DataFrame:
    """A view's SQL with each ``{layer.name}`` bound to its (pinned) DataFrame."""
    aliases = {table: f"t{i}" for i, table in enumerate(tables)}
    text = VIEW_TABLE.sub(lambda m: "{" + aliases[m.group(1)] + "}", sql)
    return spark.sql(text, **{aliases[t]: df for t, df in tables.items()})


def feature_pipeline(spec: FeatureSet, seed: int = 42) -> Pipeline:
    """The unfitted pipeline for one set. Stage order follows conf/base/features.yaml."""
    derived = [f"({expr}) AS `{name}`" for name, expr in spec.derive.items()]
    derived += [
        f"{part}(`{column}`) AS `{column}_{part}`" for column, parts in spec.dates.items() for part in parts
    ]
    if spec.text:
        derived.append(f"coalesce(CAST(`{spec.text.column}` AS STRING), '') AS {TEXT}")
    stages: list = (
        [SQLTransformer(statement=f"SELECT *, {', '.join(derived)} FROM __THIS__")] if derived else []
    )

    numeric = _numeric_inputs(spec)
    to_impute = list(dict.fromkeys(numeric + list(spec.buckets)))
    if to_impute:
        stages.append(
            Imputer(inputCols=to_impute, outputCols=[_imputed(c) for c in to_impute], strategy=spec.impute)
        )
    one_hot_in, one_hot_out = [], []
    if spec.buckets:
        columns = list(spec.buckets)
        stages.append(
            Bucketizer(
                splitsArray=[spec.buckets[c] for c in columns],
                inputCols=[_imputed(c) for c in columns],
                outputCols=[f"_f_{c}_bucket" for c in columns],
            )
        )
        one_hot_in += [f"_f_{c}_bucket" for c in columns]
        one_hot_out += [f"_f_{c}_bucket_ohe" for c in columns]
    if spec.categorical:
        stages.append(
            StringIndexer(
                inputCols=spec.categorical,
                outputCols=[f"_f_{c}_idx" for c in spec.categorical],
                handleInvalid="keep",  # unseen values and nulls get their own slot
                stringOrderType="frequencyDesc",
            )
        )
        one_hot_in += [f"_f_{c}_idx" for c in spec.categorical]
        one_hot_out += [f"_f_{c}_ohe" for c in spec.categorical]
    if one_hot_in:
        stages.append(OneHotEncoder(inputCols=one_hot_in, outputCols=one_hot_out, handleInvalid="keep"))
    assembled = [_imputed(c) for c in numeric] + one_hot_out
    if spec.text:
        stages += _text_stages(spec, seed)
        assembled.append(TEXT_VECTOR)
    stages.append(VectorAssembler(inputCols=assembled, outputCol=ASSEMBLED, handleInvalid="error"))
    if spec.scale:
        # Centring would make sparse text vectors dense; scale only when there is no text.
        stages.append(StandardScaler(inputCol=ASSEMBLED, outputCol=SCALED, withMean=not spec.text))
    return Pipeline(stages=stages)


def feature_layout(model: PipelineModel, spec: FeatureSet) -> FeatureLayout:
    """Readable names for the assembled vector's slots, in VectorAssembler's order."""
    names = list(_numeric_inputs(spec))
    kinds = ["numeric"] * len(names)
    for column in spec.buckets:
        splits = spec.buckets[column]
        names += [f"{column} in [{_number(lo)}, {_number(hi)})" for lo, hi in pairwise(splits)]
    if spec.categorical:
        indexer = next(s for s in model.stages if isinstance(s, StringIndexerModel))
        for column, labels in zip(spec.categorical, indexer.labelsArray, strict=True):
            names += [f"{column}={label}" for label in labels] + [f"{column}=(other)"]
    kinds += ["indicator"] * (len(names) - len(kinds))
    if spec.text:
        method, column = spec.text.method, spec.text.column
        if method == "tfidf":
            vocabulary = next(s for s in model.stages if isinstance(s, CountVectorizerModel)).vocabulary
            words = [f"{column}:{word}" for word in vocabulary]
        elif method == "hashing_tfidf":
            words = [f"{column}:#{i}" for i in range(spec.text.vocab_size)]
        else:
            words = [f"{column}:w2v[{i}]" for i in range(spec.text.vector_size)]
        names += words
        kinds += ["text"] * len(words)
    return FeatureLayout(names, kinds)


def to_gold(scored: DataFrame, spec: FeatureSet) -> DataFrame:
    """The gold feature table: key, label, source columns in their own units, vectors as arrays."""
    sources = [
        *spec.keys,
        *([spec.label] if spec.label else []),
        *spec.numeric,
        *spec.buckets,
        *spec.categorical,
    ]
    vectors = [vector_to_array(ASSEMBLED).alias("features")]
    if spec.scale:
        vectors.append(vector_to_array(SCALED).alias("features_scaled"))
    return scored.select(*[F.col(f"`{c}`") for c in dict.fromkeys(sources)], *vectors)


def check_columns(df: DataFrame, spec: FeatureSet, key: str, config: Config) -> None:
    """Fail before any compute when the set names a column its input lacks or has the wrong type;
    the error names the file and key. Derived expressions are analysed (not run) here too."""
    for name, expr in spec.derive.items():
        try:
            df.selectExpr(expr)
        except Exception as error:  # AnalysisException / ParseException from Spark's analyser
            first_line = str(error).strip().splitlines()[0]
            raise config.error(
                f"{key}.derive.{name}", f"= {expr!r}: not a valid Spark SQL expression here ({first_line})"
            ) from None
    types = {f.name: f.dataType for f in df.schema.fields}
    available = [*types, *spec.derive]
    wanted = [("key", spec.keys), ("label", [spec.label] if spec.label else [])]
    wanted += [("numeric", spec.numeric), ("categorical", spec.categorical), ("buckets", list(spec.buckets))]
    wanted += [("dates", list(spec.dates)), ("text.column", [spec.text.column] if spec.text else [])]
    for field, columns in wanted:
        for column in columns:
            if column not in available:
                raise config.error(
                    f"{key}.{field}",
                    f"names column '{column}', which {spec.input} does not have; {one_of(column, available)}",
                )
    for column in [*spec.numeric, *spec.buckets]:
        if column in types and not isinstance(types[column], NumericType):
            raise config.error(
                f"{key}.numeric",
                f"names '{column}' of type {types[column].simpleString()}: expected a numeric column"
                + _how_to_type(config, spec.input, column),
            )
    if spec.text and not isinstance(types.get(spec.text.column), StringType):
        raise config.error(f"{key}.text.column", f"= '{spec.text.column}': expected a string column")


def _how_to_type(config: Config, table: str, column: str) -> str:
    """Where an input column gets its type: clean for a silver table, its SQL for a view."""
    layer, _, dataset = table.partition(".")
    if layer == "silver":
        return f" (give it one in clean: clean.datasets.{dataset}.columns.{column}.type, e.g. double)"
    if table in config.features.views:
        return f" (cast it in the view: CAST({column} AS double) AS {column})"
    return ""


# --- the stage ---------------------------------------------------------------------------------


class Inputs:
    """The sets' input DataFrames at pinned versions, each read and cached once for all the sets
    that read the same input at the same versions (two sets over one view compute it once), and
    freed after the last of them."""

    def __init__(self, tables: Tables, config: Config, sets: dict[str, FeatureSet]):
        self.tables, self.config, self.sets = tables, config, sets
        self.versions = {name: input_versions(tables, config, spec) for name, spec in sets.items()}
        self._keys = {
            name: (spec.input, tuple(sorted(self.versions[name].items()))) for name, spec in sets.items()
        }
        self._readers = Counter(self._keys.values())
        self._cached: dict[tuple, DataFrame] = {}

    def read(self, name: str) -> DataFrame:
        key = self._keys[name]
        if key not in self._cached:
            self._cached[key] = read_input(
                self.tables, self.config, self.sets[name], self.versions[name]
            ).cache()
        return self._cached[key]

    def done(self, name: str) -> None:
        """``name`` reads its input no more; the last set to read it frees it."""
        key = self._keys[name]
        self._readers[key] -= 1
        if self._readers[key] == 0 and key in self._cached:
            self._cached.pop(key).unpersist()

    def close(self) -> None:
        for frame in self._cached.values():
            frame.unpersist()
        self._cached.clear()


def build_features(run: Run) -> StageResult:
    if not run.config.features.sets:
        return skipped("no features.sets in conf")
    result = StageResult()
    inputs = Inputs(run.tables, run.config, run.config.features.sets)
    try:
        for name, spec in run.track("features (sets)", run.config.features.sets.items()):
            built = build_feature_set(run.tables, run.config, name, spec, inputs)
            result.rows_in += built["rows"]
            result.rows_out += built["rows"]
            result.tables[built["table"]] = built["version"]
            result.metrics[name] = built
    finally:
        inputs.close()
    return result


def build_feature_set(
    tables: Tables, config: Config, name: str, spec: FeatureSet, inputs: Inputs | None = None
) -> dict:
    """Fit (or reuse) the set's pipeline on pinned input versions and write its gold table; when
    gold already holds this model's output for these versions, leave it as it is. ``inputs``:
    the stage's, shared with the other sets (by default, this set's own)."""
    own = inputs is None
    inputs = Inputs(tables, config, {name: spec}) if own else inputs
    try:
        return _build_feature_set(tables, config, name, spec, inputs)
    finally:
        inputs.done(name)
        if own:
            inputs.close()


def _build_feature_set(tables: Tables, config: Config, name: str, spec: FeatureSet, inputs: Inputs) -> dict:
    table = f"gold.{name}_features"
    versions = inputs.versions[name]
    identity = {**spec.model_dump(mode="json"), "view": config.features.views.get(spec.input)}
    folder = config.models_root / "features" / name / fingerprint(identity, versions, config.run.seed)
    latest = read_latest(config, name)
    if (
        latest
        and latest["model"] == str(folder)
        and tables.exists(table)
        and tables.version(table) == latest["version"]
    ):
        return _built(latest, reused=True, rewritten=False)
    source = inputs.read(name)
    check_columns(source, spec, f"features.sets.{name}", config)
    manifest = read_manifest(folder)
    reused = manifest is not None
    if reused:
        model = PipelineModel.load(model_uri(folder))
    else:
        if source.isEmpty():  # the imputer would fail with "surrogate cannot be computed"
            read = ", ".join(f"{table} v{version}" for table, version in versions.items())
            raise config.error(
                f"features.sets.{name}.input",
                f"= '{spec.input}': no rows to fit on (read {read}); the rows were quarantined or "
                "filtered before this: see the clean line and quarantine.rows",
            )
        model = feature_pipeline(spec, config.run.seed).fit(source)
        layout = feature_layout(model, spec)
        size = model.transform(source).schema[ASSEMBLED].metadata["ml_attr"]["num_attrs"]
        if size != len(layout.names):  # a bug here would mislabel every importance and rule
            raise RuntimeError(f"{name}: {len(layout.names)} feature names for {size} slots")
        manifest = {
            "feature_set": name,
            "inputs": versions,
            "config": identity,
            "seed": config.run.seed,
            "layout": layout.as_dict(),
        }
        save_model(model, folder, manifest)
    written = tables.write(
        to_gold(model.transform(source), spec), table, mode="overwrite", evolve_schema=True
    )
    latest = {
        "table": table,
        "version": written.version,
        "rows": written.rows_written,
        "model": str(folder),
        **manifest,
    }
    (folder.parent / LATEST).write_text(json.dumps(latest, indent=2, default=str), encoding="utf-8")
    return _built(latest, reused=reused, rewritten=True)


def _built(latest: dict, reused: bool, rewritten: bool) -> dict:
    return {
        "table": latest["table"],
        "version": latest["version"],
        "rows": latest["rows"],
        "inputs": latest["inputs"],
        "model": latest["model"],
        "reused_model": reused,
        "rewritten": rewritten,
        "features": len(latest["layout"]["names"]),
    }


def input_versions(tables: Tables, config: Config, spec: FeatureSet) -> dict[str, int]:
    """The current version of each table the set reads (the view's tables, or its input)."""
    view = config.features.views.get(spec.input)
    names = view_tables(view) if view is not None else [spec.input]
    return {table: tables.version(table) for table in names}


def read_input(tables: Tables, config: Config, spec: FeatureSet, versions: dict[str, int]) -> DataFrame:
    pinned = {table: tables.read(table, version=v) for table, v in versions.items()}
    view = config.features.views.get(spec.input)
    if view is None:
        return pinned[spec.input]
    any_table = next(iter(pinned.values()))
    return query_view(any_table.sparkSession, view, pinned)


# --- small pieces ------------------------------------------------------------------------------


def _numeric_inputs(spec: FeatureSet) -> list[str]:
    """Numeric columns plus the date parts, which are numbers too."""
    parts = [f"{column}_{part}" for column, wanted in spec.dates.items() for part in wanted]
    return list(dict.fromkeys(spec.numeric + parts))


def _imputed(column: str) -> str:
    return f"_f_{column}_imputed"


def _text_stages(spec: FeatureSet, seed: int) -> list:
    text = spec.text
    stages: list = [
        RegexTokenizer(inputCol=TEXT, outputCol=TOKENS, pattern=r"[^\p{L}\p{N}]+", toLowercase=True)
    ]
    words = TOKENS
    if text.stop_words:
        stages.append(StopWordsRemover(inputCol=TOKENS, outputCol=WORDS))
        words = WORDS
    if text.method == "tfidf":
        stages += [
            CountVectorizer(inputCol=words, outputCol="_f_tf", vocabSize=text.vocab_size, minDF=text.min_df),
            IDF(inputCol="_f_tf", outputCol=TEXT_VECTOR),
        ]
    elif text.method == "hashing_tfidf":
        stages += [
            HashingTF(inputCol=words, outputCol="_f_tf", numFeatures=text.vocab_size),
            IDF(inputCol="_f_tf", outputCol=TEXT_VECTOR),
        ]
    else:
        stages.append(
            Word2Vec(
                inputCol=words,
                outputCol=TEXT_VECTOR,
                vectorSize=text.vector_size,
                minCount=int(text.min_df),
                seed=seed,
            )
        )
    return stages


def _number(value: float) -> str:
    return f"{value:g}"
