"""Stage analytics: k-means segments, FP-growth rules and decision trees, each where configured.

Input: the gold feature tables (at the versions the features stage wrote) and
``analytics.rules.input``. Output: ``gold.segments``, ``gold.segment_profiles``,
``gold.frequent_itemsets``, ``gold.association_rules``, ``gold.tree_rules``; models under
``<data_root>/models/analytics/``; plots and tree rules under ``<runs_dir>/<run id>/analytics/``.
Parameters: ``analytics`` (conf/base/analytics.yaml), ``run.seed``.

Each part (kmeans, rules, trees) is done again only when its config, seed or input versions
changed, or a table it wrote moved on since: otherwise the last run's results are kept (its
plots copied into this run's folder).
"""

from __future__ import annotations

import logging
from pathlib import Path

from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType

from deepspark import plots
from deepspark.config import KMeansConfig, RulesConfig, TreeConfig
from deepspark.lineage import (
    fingerprint,
    latest_features,
    read_latest,
    record_work,
    recorded_work,
    save_model,
)
from deepspark.results import TreeSummary
from deepspark.run import Run, StageResult, skipped
from deepspark.stages.analytics import kmeans, rules, tree
from deepspark.tracking import log_model_run, mlflow_record

log = logging.getLogger(__name__)
CLUSTER_PLOT_POINTS = 3000
TOP_RULES = 10


PARTS = ("kmeans", "rules", "trees")  # each can run alone: `deepspark analytics --part rules`


def check_parts(parts: tuple[str, ...] | list[str]) -> None:
    """Refuse part names that are not analyses (the CLI calls this before Spark starts)."""
    unknown = [part for part in parts if part not in PARTS]
    if unknown:
        raise ValueError(f"unknown analytics part(s) {unknown}; expected some of {list(PARTS)}")


def analyze(run: Run) -> StageResult:
    """Every configured analysis, or only ``run.parts`` of them."""
    check_parts(run.parts)
    config = run.config.analytics
    wanted = set(run.parts or PARTS)
    result = StageResult()
    seed = run.config.run.seed
    if config.kmeans and "kmeans" in wanted:
        km = config.kmeans
        identity = fingerprint(km.model_dump(mode="json"), feature_versions(run, [km.features]), seed)
        result.metrics["kmeans"] = unless_done(
            run, "kmeans", identity, lambda mine: segment(run, km, mine), result
        )
    if config.rules and "rules" in wanted:
        rl = config.rules
        identity = fingerprint(rl.model_dump(mode="json"), {rl.input: run.tables.version(rl.input)}, seed)
        result.metrics["rules"] = unless_done(
            run, "rules", identity, lambda mine: mine_rules(run, rl, mine), result
        )
    if config.trees and "trees" in wanted:
        trees = config.trees
        settings = {name: spec.model_dump(mode="json") for name, spec in trees.items()}
        inputs = feature_versions(run, [spec.features for spec in trees.values()])
        identity = fingerprint(settings, inputs, seed)
        result.metrics["trees"] = unless_done(
            run, "trees", identity, lambda mine: grow_trees(run, trees, mine), result
        )
        for name, summary in result.metrics["trees"].items():
            if summary["leaves"] == 1:
                result.status = "warning"
                result.notes.append(single_leaf(name, summary))
                log.warning(result.notes[-1])
    if not result.metrics:
        return skipped(f"nothing configured in conf analytics for {', '.join(sorted(wanted))}")
    result.details += outcome_lines(result.metrics)
    return result


def outcome_lines(metrics: dict) -> list[str]:
    """A line for the console per analysis: what it found, in its own measure."""
    lines = []
    if "kmeans" in metrics:
        km = metrics["kmeans"]
        lines.append(f"kmeans: k={km['k']} (silhouette {km['silhouette']:.4f}, inertia {km['inertia']:g})")
    if "rules" in metrics:
        rl = metrics["rules"]
        found = f"{rl['rules']} rule(s) from {rl['itemsets']} frequent itemset(s)"
        line = f"rules: {found} in {rl['baskets']} baskets"
        if rl.get("top_by_lift"):
            top = rl["top_by_lift"][0]
            sides = f"{', '.join(top['antecedent'])} -> {', '.join(top['consequent'])}"
            line += f"; top lift {top['lift']:.2f}: {sides}"
        lines.append(line)
    for name, summary in metrics.get("trees", {}).items():
        scores = summary["metrics"]
        if summary["kind"] == "regressor":
            measured = f"test RMSE {scores['rmse']:.4g} (R² {scores['r2']:.3f})"
        else:
            measured = f"test accuracy {scores['accuracy']:.4f}"
        leaves = f"{summary['leaves']} leaf" if summary["leaves"] == 1 else f"{summary['leaves']} leaves"
        lines.append(f"tree {name}: {measured}, {leaves}, {summary['rows']} rows")
    return lines


def single_leaf(name: str, summary: TreeSummary) -> str:
    """What a tree that is one leaf (the same prediction for every row) tells, and what to try."""
    chosen = ", ".join(f"{key} {value}" for key, value in summary["chosen"].items())
    return (
        f"tree {name}: a single leaf, the same prediction for every row: no split of the "
        f"{summary['rows']} rows beat it in tuning (chosen {chosen}); the features may not tell "
        f"'{summary['label']}', or the rows are too few: try a smaller "
        f"analytics.trees.{name}.min_instances_per_node or more features"
    )


def feature_versions(run: Run, sets: list[str]) -> dict[str, int | None]:
    """The gold table and version the features stage last wrote for each set (None: not yet)."""
    versions: dict[str, int | None] = {}
    for name in sets:
        latest = read_latest(run.config, name)
        versions[latest["table"] if latest else name] = latest["version"] if latest else None
    return versions


def unless_done(run: Run, part: str, identity: str, analysis, result: StageResult) -> dict:
    """``analysis(part_result)``, or the results of the last run that did this part with the same
    ``identity`` (its config, input versions and seed) while the tables it wrote are unchanged:
    a rerun with nothing new landed fits nothing again. Counts and tables go into ``result``."""
    folder = run.config.models_root / "analytics" / part
    done = recorded_work(run.tables, folder, identity, run.run_dir)
    if done is not None:
        result.notes.append(
            f"{part}: inputs and config unchanged since run {done['run_id']}; its results kept"
        )
    else:
        mine = StageResult()
        metrics = analysis(mine)
        done = {"tables": mine.tables, "metrics": metrics, "rows_in": mine.rows_in, "rows_out": mine.rows_out}
        record_work(folder, identity, run.run_id, run.run_dir, **done)
    result.rows_in += done["rows_in"]
    result.rows_out += done["rows_out"]
    result.tables.update(done["tables"])
    return done["metrics"]


def segment(run: Run, config: KMeansConfig, result: StageResult) -> dict:
    features, latest = latest_features(run.config, config.features, run.tables)
    spec = run.config.features.sets[config.features]
    profile = config.profile or spec.numeric
    missing = [c for c in profile if c not in features.columns]
    if missing:
        raise run.config.error(
            "analytics.kmeans.profile",
            f"names {missing}, not in {latest['table']}; expected some of: {', '.join(features.columns)}",
        )
    column = "features_scaled" if spec.scale else "features"
    vectors = kmeans.as_vectors(features, column).cache()
    scored = vectors  # replaced by the clustered frame once there is one
    try:
        clustering = kmeans.fit_kmeans(
            vectors,
            config.k_range,
            run.config.run.seed,
            config.max_iter,
            config.n_init,
            config.init_steps,
            config.parallelism,
        )
        scored = clustering.model.transform(vectors).cache()
        chosen = next(point for point in clustering.curve if point["k"] == clustering.k)
        silhouette = chosen["silhouette"] if chosen["silhouette"] is not None else kmeans.silhouette(scored)
        written = run.tables.write(
            scored.select(*spec.keys, kmeans.SEGMENT), "gold.segments", mode="overwrite", evolve_schema=True
        )
        profiles_df = kmeans.profile_segments(scored, profile)
        run.tables.write(profiles_df, "gold.segment_profiles", mode="overwrite", evolve_schema=True)
        profiles = [row.asDict() for row in profiles_df.collect()]
        rows = written.rows_written  # every clustered row gets a segment
        points = kmeans.project_2d(scored, rows, CLUSTER_PLOT_POINTS, run.config.run.seed)
    finally:
        vectors.unpersist()
        scored.unpersist()
    result.rows_in += rows
    result.rows_out += written.rows_written
    result.tables["gold.segments"] = written.version
    result.tables["gold.segment_profiles"] = run.tables.version("gold.segment_profiles")
    folder = run.config.models_root / "analytics" / "kmeans"
    inputs = {latest["table"]: latest["version"]}
    save_model(
        clustering.model,
        folder,
        {"inputs": inputs, "column": column, "k": clustering.k, "run_id": run.run_id},
    )
    out = run.run_dir / "analytics"
    figures = [str(plots.plot_clusters(points, out / "clusters_pca.png"))]
    if len(clustering.curve) > 1:
        figures.append(str(plots.plot_elbow(clustering.curve, out / "kmeans_elbow.png")))
    params = {**config.model_dump(mode="json"), "k": clustering.k, "column": column}
    logged = log_model_run(
        run.config,
        name="kmeans",
        kind="k-means",
        run_id=run.run_id,
        params=params,
        metrics={"silhouette": silhouette, "inertia": clustering.inertia, "rows": rows},
        history=[  # the elbow curve, a step per k tried
            {f"curve_{m}": v for m, v in point.items() if v is not None} for point in clustering.curve
        ],
        tables=run.tables,
        inputs=inputs,
        artefacts={"model": [folder], "plots": [Path(f) for f in figures]},
    )
    return {
        "inputs": inputs,
        "k": clustering.k,
        "silhouette": round(silhouette, 4),
        "silhouette_distance": "squared Euclidean",
        "n_init": config.n_init,
        "inertia": round(clustering.inertia, 4),
        "curve": clustering.curve,
        "profiles": profiles,
        "model": str(folder),
        "plots": figures,
        "mlflow": mlflow_record(logged),
    }


def mine_rules(run: Run, config: RulesConfig, result: StageResult) -> dict:
    version = run.tables.version(config.input)
    source = run.tables.read(config.input, version=version)
    field = next((f for f in source.schema.fields if f.name == config.items), None)
    if field is None or not isinstance(field.dataType, ArrayType):
        raise run.config.error(
            "analytics.rules.items",
            f"= {config.items!r}: expected an array column of {config.input} (one basket per row); "
            f"its columns are {source.schema.simpleString()}",
        )
    baskets = rules.as_baskets(source, config.items)
    try:
        mining = rules.mine(
            baskets,
            config.min_support,
            config.min_confidence,
            config.max_itemsets,
            config.max_length,
            run.config.run.seed,
        )
    except rules.ItemsetExplosion as explosion:
        hint = (
            f"a higher min_support (e.g. {explosion.suggestion:g})"
            if explosion.suggestion
            else "a max_length, or max_itemsets: null to mine anyway"
        )
        raise run.config.error(
            "analytics.rules.min_support",
            f"= {config.min_support:g}: mining {config.input} {explosion} "
            f"(analytics.rules.max_itemsets); expected {hint}",
        ) from None
    try:
        itemsets = run.tables.write(
            rules.frequent_itemsets(mining), "gold.frequent_itemsets", mode="overwrite"
        )
        written = run.tables.write(
            rules.association_rules(mining), "gold.association_rules", mode="overwrite"
        )
    finally:
        mining.release()
    top = [
        row.asDict()
        for row in run.tables.read("gold.association_rules")
        .orderBy(F.desc("lift"), F.desc("confidence"))
        .limit(TOP_RULES)
        .collect()
    ]
    result.rows_in += mining.baskets
    result.tables["gold.frequent_itemsets"] = itemsets.version
    result.tables["gold.association_rules"] = written.version
    folder = run.config.models_root / "analytics" / "rules"
    inputs = {config.input: version}
    save_model(mining.model, folder, {"inputs": inputs, **config.model_dump(), "run_id": run.run_id})
    figure = plots.plot_top_rules(top, run.run_dir / "analytics" / "top_rules.png") if top else None
    return {
        "inputs": inputs,
        "baskets": mining.baskets,
        "itemsets": itemsets.rows_written,
        "itemset_estimate": round(mining.itemset_estimate),
        "estimate_kind": mining.estimate_kind,
        "rules": written.rows_written,
        "top_by_lift": top,
        "model": str(folder),
        "plots": [str(figure)] if figure else [],
    }


def grow_trees(run: Run, trees: dict[str, TreeConfig], result: StageResult) -> dict:
    summaries, leaves = {}, []
    for name, config in trees.items():
        summaries[name], rows = grow_one_tree(run, name, config)
        leaves += rows
    written = run.tables.write(
        run.spark.createDataFrame(
            leaves, "tree string, leaf int, rule string, prediction string, samples long, confidence double"
        ),
        "gold.tree_rules",
        mode="overwrite",
    )
    result.tables["gold.tree_rules"] = written.version
    return summaries


def grow_one_tree(run: Run, name: str, config: TreeConfig) -> tuple[TreeSummary, list[dict]]:
    features, latest = latest_features(run.config, config.features, run.tables)
    spec = run.config.features.sets[config.features]
    data = tree.training_frame(features, spec.label, config.kind).cache()
    try:
        if config.kind == "classifier":
            classes = [row[0] for row in data.select(tree.LABEL).distinct().limit(2).collect()]
            if len(classes) < 2:
                raise run.config.error(
                    f"analytics.trees.{name}.features",
                    f"= {config.features!r}: label '{spec.label}' of {latest['table']} has a single class "
                    f"({classes[0] if classes else 'no rows'}); expected at least two for a classifier",
                )
        seed = run.config.run.seed
        train, test = data.randomSplit([1 - config.test_fraction, config.test_fraction], seed=seed)
        grown = tree.grow_tree(train, config, seed)
        metrics = tree.evaluate(grown, test)
        rows = data.count()
    finally:
        data.unpersist()
    names, kinds = latest["layout"]["names"], latest["layout"]["kinds"]
    root = tree.tree_nodes(grown.tree)
    out = run.run_dir / "analytics"
    out.mkdir(parents=True, exist_ok=True)
    rules_path = out / f"tree_{name}.txt"
    rules_path.write_text(tree.render_rules(root, names, kinds, grown.classes) + "\n", encoding="utf-8")
    ranked = tree.importances(grown.tree, names)
    figures = [
        str(
            plots.plot_importances(
                ranked, f"{name}: feature importances", out / f"tree_{name}_importances.png"
            )
        )
    ]
    if "confusion" in metrics:
        confusion = metrics["confusion"]
        figures.append(
            str(
                plots.plot_confusion(
                    confusion["classes"], confusion["counts"], name, out / f"tree_{name}_confusion.png"
                )
            )
        )
    folder = run.config.models_root / "analytics" / "trees" / name
    inputs = {latest["table"]: latest["version"]}
    save_model(
        grown.model, folder, {"inputs": inputs, **config.model_dump(), **grown.params, "run_id": run.run_id}
    )
    leaves = [{"tree": name, **row} for row in tree.leaf_rules(root, names, kinds, grown.classes)]
    numbers = {k: v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    logged = log_model_run(
        run.config,
        name=f"tree {name}",
        kind=f"decision tree {config.kind}",
        run_id=run.run_id,
        params={**config.model_dump(mode="json"), **grown.params, "label": spec.label},
        metrics={**numbers, "leaves": len(leaves), "rows": rows},
        tables=run.tables,
        inputs=inputs,
        artefacts={"model": [folder], "rules": [rules_path], "plots": [Path(f) for f in figures]},
    )
    summary: TreeSummary = {
        "inputs": inputs,
        "kind": config.kind,
        "label": spec.label,
        "impurity": config.impurity,
        "rows": rows,
        "chosen": grown.params,
        "metrics": {k: (round(v, 4) if isinstance(v, float) else v) for k, v in metrics.items()},
        "importances": ranked,
        "leaves": len(leaves),
        "rules": str(rules_path),
        "model": str(folder),
        "plots": figures,
        "mlflow": mlflow_record(logged),
    }
    return summary, leaves
