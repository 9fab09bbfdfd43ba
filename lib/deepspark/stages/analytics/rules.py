"""Association rules: MLlib FP-growth over baskets, with a guard against itemset explosion.

Input: ``analytics.rules.input`` (``silver.orders``), one basket per row in the ``items`` array.
Output: ``gold.frequent_itemsets`` (items, size, freq, support) and ``gold.association_rules``
(antecedent, consequent, support, confidence, lift, leverage, conviction), the model in
``<data_root>/models/analytics/rules/``. Parameters: ``analytics.rules``.

MLlib's rules have one item as consequent; the itemsets are all of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pyspark.ml.fpm import FPGrowth, FPGrowthModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

BASKET = "items"


class ItemsetExplosion(ValueError):
    """Mining at this support could produce more itemsets than allowed; ``suggestion`` is a
    support at which it could not."""

    def __init__(self, bound: float, suggestion: float | None):
        self.bound, self.suggestion = bound, suggestion
        super().__init__(f"could yield up to {bound:,.0f} frequent itemsets")


@dataclass
class Mining:
    model: FPGrowthModel
    baskets: int
    itemset_bound: float  # the guard's upper bound on the number of frequent itemsets
    cached: list[DataFrame] = field(default_factory=list)  # held until release()

    def release(self) -> None:
        for df in self.cached:
            df.unpersist()


def as_baskets(df: DataFrame, items: str) -> DataFrame:
    """One distinct, non-null item list per row (FP-growth rejects repeated items); rows with no
    list at all are left out."""
    cleaned = F.array_distinct(F.filter(F.col(items), lambda item: item.isNotNull()))
    return df.filter(F.col(items).isNotNull()).select(cleaned.alias(BASKET))


def quick_bound(baskets: DataFrame, support: float) -> tuple[int, float]:
    """Baskets and a loose bound on the number of frequent itemsets, in one cheap pass.

    Every frequent itemset is in at least ``ceil(support * n)`` baskets and a basket of ``m``
    items contains ``2**m - 1`` itemsets, so there are at most ``sum(2**m - 1) / ceil(support * n)``.
    """
    n, total = baskets.select(F.count(F.lit(1)), F.sum(F.pow(F.lit(2.0), F.size(BASKET)) - 1.0)).first()
    return n, float(total or 0.0) / max(1, _min_count(support, n))


def itemset_bounds(baskets: DataFrame, n: int, supports: list[float]) -> dict[float, float]:
    """Tighter bounds, one per support, in two more passes: as :func:`quick_bound`, but counting
    only each basket's frequent items, since a frequent itemset holds nothing else."""
    lowest = max(1, _min_count(min(supports), n))
    counts = {
        row.item: row["count"]
        for row in baskets.select(F.explode(BASKET).alias("item"))
        .groupBy("item")
        .count()
        .filter(F.col("count") >= lowest)
        .collect()
    }
    if not counts:
        return dict.fromkeys(supports, 0.0)
    count_of = F.create_map(*[F.lit(x) for pair in counts.items() for x in pair])
    known = F.filter(F.transform(BASKET, lambda item: count_of[item]), lambda c: c.isNotNull())
    sums = [
        F.sum(F.pow(F.lit(2.0), F.size(F.filter(known, _at_least(_min_count(s, n))))) - 1.0) for s in supports
    ]
    totals = baskets.select(*sums).first()
    return {s: float(totals[i] or 0.0) / max(1, _min_count(s, n)) for i, s in enumerate(supports)}


def mine(baskets: DataFrame, min_support: float, min_confidence: float, max_itemsets: int) -> Mining:
    """Fit FP-growth after the guard; call ``release()`` on the result when done with it.

    The guard costs one aggregation when the loose bound fits; otherwise the tight bound decides,
    and :class:`ItemsetExplosion` (suggesting the lowest of 2x, 4x, ... the support that fits) is
    raised instead of mining."""
    cached = [] if baskets.is_cached else [baskets.persist()]  # the guard and MLlib share one copy
    try:
        n, bound = quick_bound(baskets, min_support)
        if bound > max_itemsets:
            candidates = sorted({min(1.0, min_support * 2**i) for i in range(12)})
            bounds = itemset_bounds(baskets, n, candidates)
            bound = bounds[min_support]
            if bound > max_itemsets:
                fits = [s for s in candidates if bounds[s] <= max_itemsets]
                raise ItemsetExplosion(bound, fits[0] if fits else None)
        model = FPGrowth(itemsCol=BASKET, minSupport=min_support, minConfidence=min_confidence).fit(baskets)
    except Exception:
        for df in cached:
            df.unpersist()
        raise
    # MLlib's itemsets are lazy: mined again by every action, the rules included. Mine once.
    cached.append(model.freqItemsets.persist())
    return Mining(model, n, bound, cached)


def frequent_itemsets(mining: Mining) -> DataFrame:
    return mining.model.freqItemsets.select(
        F.array_sort("items").alias("items"),
        F.size("items").alias("size"),
        "freq",
        (F.col("freq") / F.lit(mining.baskets)).alias("support"),
    )


def association_rules(mining: Mining) -> DataFrame:
    """MLlib's rules with leverage and conviction added (conviction is null for confidence 1).

    With sA, sC the supports of antecedent and consequent: support(A u C) = s, confidence
    = s / sA, lift = confidence / sC; so leverage = s - sA * sC = s * (1 - 1 / lift) and
    conviction = (1 - sC) / (1 - confidence).
    """
    rules = mining.model.associationRules
    consequent_support = F.col("confidence") / F.col("lift")
    return rules.select(
        F.array_sort("antecedent").alias("antecedent"),
        "consequent",
        "support",
        "confidence",
        "lift",
        (F.col("support") * (F.lit(1.0) - F.lit(1.0) / F.col("lift"))).alias("leverage"),
        F.when(F.col("confidence") < 1.0, (1.0 - consequent_support) / (1.0 - F.col("confidence"))).alias(
            "conviction"
        ),
    )


def _min_count(support: float, n: int) -> int:
    """MLlib's threshold: an itemset is frequent when it is in at least ceil(support * n) baskets."""
    return math.ceil(support * n)


def _at_least(threshold: int):
    return lambda count: count >= threshold
