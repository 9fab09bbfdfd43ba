"""Association rules: MLlib FP-growth over baskets, a guard against itemset explosion, and rules
with any number of items on either side.

Input: ``analytics.rules.input`` (``silver.orders``), one basket per row in the ``items`` array.
Output: ``gold.frequent_itemsets`` (items, size, freq, support) and ``gold.association_rules``
(antecedent, consequent, antecedent/consequent support, support, confidence, lift, leverage,
conviction), the model in ``<data_root>/models/analytics/rules/``. Parameters: ``analytics.rules``.

The rules are computed from the frequent itemsets, as mlxtend's ``association_rules`` does:
every split of a frequent itemset into a non-empty antecedent and consequent whose confidence
reaches the threshold (MLlib's own rules have one-item consequents only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pyspark.ml.fpm import FPGrowth, FPGrowthModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

BASKET = "items"
GUARD_SAMPLE = 5000  # baskets the guard mines itself (all of them when there are fewer)


class ItemsetExplosion(ValueError):
    """Mining at this support would produce more itemsets than allowed; ``suggestion`` is a
    support at which the guard's count fits."""

    def __init__(self, limit: int, suggestion: float | None, exact: bool):
        self.limit, self.suggestion = limit, suggestion
        counted = "yields" if exact else "would yield (counted on a sample)"
        super().__init__(f"{counted} more than {limit:,} frequent itemsets")


@dataclass
class Mining:
    model: FPGrowthModel
    baskets: int
    itemset_estimate: float  # what the guard expected: an upper bound, or a count on a sample
    estimate_kind: str  # "bound" (cheap, loose), "exact" (all baskets counted), "sample"
    itemsets: DataFrame  # cached: MLlib's are lazy, mined again by every action
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


def count_frequent(
    baskets: list[list[str]], min_count: int, limit: int, max_length: int | None = None
) -> int:
    """The number of itemsets in at least ``min_count`` of ``baskets`` (up to ``max_length``
    items), counted exactly by Eclat over bitsets; counting stops past ``limit``."""
    tids: dict[str, int] = {}
    for row, basket in enumerate(baskets):
        for item in basket:
            tids[item] = tids.get(item, 0) | (1 << row)
    singles = sorted((t for t in tids.values() if t.bit_count() >= min_count), key=int.bit_count)
    count, stack = 0, [(1, singles)] if singles else []
    while stack:  # each entry: the tidsets of itemsets that share all but their last item
        length, group = stack.pop()
        count += len(group)
        if count > limit:
            return count
        if max_length is not None and length >= max_length:
            continue
        for i, tid in enumerate(group):
            longer = [
                both for both in (tid & other for other in group[i + 1 :]) if both.bit_count() >= min_count
            ]
            if longer:
                stack.append((length + 1, longer))
    return count


def guard(
    baskets: DataFrame, min_support: float, max_itemsets: int | None, max_length: int | None, seed: int
) -> tuple[int, float, str]:
    """Baskets, the expected number of frequent itemsets and how it was found. The loose bound
    decides when it fits; otherwise the itemsets of a sample of baskets (of all of them, when
    there are few) are counted, and :class:`ItemsetExplosion` refuses what would not fit,
    suggesting the lowest of 2x, 4x, ... the support that would."""
    n, bound = quick_bound(baskets, min_support)
    if max_itemsets is None or bound <= max_itemsets:
        return n, bound, "bound"
    fraction = min(1.0, 1.2 * GUARD_SAMPLE / max(1, n))
    sample = [
        row[BASKET] for row in baskets.sample(fraction=fraction, seed=seed).limit(GUARD_SAMPLE).collect()
    ]
    exact = len(sample) == n
    kind = "exact" if exact else "sample"

    def estimate(support: float) -> int:
        return count_frequent(sample, _min_count(support, len(sample)), max_itemsets, max_length)

    found = estimate(min_support)
    if found > max_itemsets:
        higher = sorted({min(1.0, min_support * 2**i) for i in range(1, 12)})
        suggestion = next((s for s in higher if estimate(s) <= max_itemsets), None)
        raise ItemsetExplosion(max_itemsets, suggestion, exact)
    return n, float(found), kind


def mine(
    baskets: DataFrame,
    min_support: float,
    min_confidence: float,
    max_itemsets: int | None,
    max_length: int | None = None,
    seed: int = 42,
) -> Mining:
    """Fit FP-growth after the guard; call ``release()`` on the result when done with it.
    ``max_length`` keeps itemsets (and so rules) of at most that many items."""
    cached = [] if baskets.is_cached else [baskets.persist()]  # the guard and MLlib share one copy
    try:
        n, estimate, kind = guard(baskets, min_support, max_itemsets, max_length, seed)
        model = FPGrowth(itemsCol=BASKET, minSupport=min_support, minConfidence=min_confidence).fit(baskets)
    except Exception:
        for df in cached:
            df.unpersist()
        raise
    itemsets = model.freqItemsets.select(
        F.array_sort("items").alias("items"),
        F.size("items").alias("size"),
        "freq",
        (F.col("freq") / F.lit(n)).alias("support"),
    )
    if max_length is not None:
        itemsets = itemsets.filter(F.col("size") <= max_length)
    cached.append(itemsets.persist())  # mined once, read by the table write and the rules
    return Mining(model, n, estimate, kind, cached[-1], cached)


def frequent_itemsets(mining: Mining) -> DataFrame:
    """Itemsets (sorted items), their size, count (freq) and support."""
    return mining.itemsets


def association_rules(mining: Mining, min_confidence: float | None = None) -> DataFrame:
    """Every rule A -> C with A, C non-empty, A u C a frequent itemset and confidence at least
    ``min_confidence`` (the model's by default), with mlxtend's metrics.

    Each itemset of k items is split 2**k - 2 ways (a bit mask per split); every part of a
    frequent itemset is frequent, so both supports are joined from the itemsets. With sA, sC the
    supports of antecedent and consequent and s that of the whole: confidence = s / sA,
    lift = confidence / sC, leverage = s - sA * sC, conviction = (1 - sC) / (1 - confidence)
    (null for confidence 1, where mlxtend says inf).
    """
    threshold = mining.model.getMinConfidence() if min_confidence is None else min_confidence
    itemsets = frequent_itemsets(mining)
    masks = F.sequence(F.lit(1), (F.pow(F.lit(2), F.col("size")) - 2).cast("int"))
    splits = itemsets.filter(F.col("size") >= 2).select(
        "items", F.col("support").alias("support"), F.explode(masks).alias("mask")
    )
    pairs = splits.select(_part(True).alias("antecedent"), _part(False).alias("consequent"), "support")
    supports = itemsets.select("items", "support")
    rules = (
        pairs.join(supports.toDF("antecedent", "antecedent_support"), "antecedent")
        .join(supports.toDF("consequent", "consequent_support"), "consequent")
        .withColumn("confidence", F.col("support") / F.col("antecedent_support"))
        .filter(F.col("confidence") >= threshold)
    )
    return rules.select(
        "antecedent",
        "consequent",
        "antecedent_support",
        "consequent_support",
        "support",
        "confidence",
        (F.col("confidence") / F.col("consequent_support")).alias("lift"),
        (F.col("support") - F.col("antecedent_support") * F.col("consequent_support")).alias("leverage"),
        F.when(
            F.col("confidence") < 1.0, (1.0 - F.col("consequent_support")) / (1.0 - F.col("confidence"))
        ).alias("conviction"),
    )


def _part(in_mask: bool):
    """The items of ``items`` whose bit in ``mask`` is (or is not) set, in order."""
    return F.filter("items", lambda item, i: (F.col("mask").bitwiseAND(_bit(i)) != 0) == in_mask)


def _bit(position):
    return F.pow(F.lit(2), position).cast("int")


def _min_count(support: float, n: int) -> int:
    """MLlib's threshold: an itemset is frequent when it is in at least ceil(support * n) baskets."""
    return math.ceil(support * n)
