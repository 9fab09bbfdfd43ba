"""FP-growth through deepspark against mlxtend, an independent implementation, and the guard."""

from __future__ import annotations

import random

import pandas as pd
import pytest
from deepspark.stages.analytics.rules import (
    ItemsetExplosion,
    as_baskets,
    association_rules,
    frequent_itemsets,
    mine,
)
from mlxtend.frequent_patterns import association_rules as mlxtend_rules
from mlxtend.frequent_patterns import fpgrowth as mlxtend_fpgrowth
from mlxtend.preprocessing import TransactionEncoder


def shop_baskets(n: int, seed: int = 7) -> list[list[str]]:
    """Baskets with structure: a product often comes with its neighbour, as in the generator."""
    rng = random.Random(seed)
    products = [f"p{i:02d}" for i in range(15)]
    baskets = []
    for _ in range(n):
        first = rng.randrange(len(products))
        basket = {products[first]}
        if rng.random() < 0.6:
            basket.add(products[(first + 1) % len(products)])
        basket.update(rng.sample(products, rng.randint(0, 3)))
        baskets.append(sorted(basket))
    return baskets


def reference(baskets: list[list[str]], min_support: float, min_confidence: float):
    encoder = TransactionEncoder()
    onehot = pd.DataFrame(encoder.fit(baskets).transform(baskets), columns=encoder.columns_)
    itemsets = mlxtend_fpgrowth(onehot, min_support=min_support, use_colnames=True)
    rules = mlxtend_rules(
        itemsets, num_itemsets=len(baskets), metric="confidence", min_threshold=min_confidence
    )
    return itemsets, rules


# Thresholds sit off exact count ratios: at a tie (confidence exactly 0.2 = 14/70) mlxtend computes
# 0.19999... from supports while MLlib divides counts, and the two libraries round differently.
@pytest.mark.parametrize("min_support,min_confidence", [(0.03, 0.21), (0.011, 0.05)])
def test_itemsets_and_rules_match_mlxtend(spark, min_support, min_confidence):
    baskets = shop_baskets(700)
    df = as_baskets(spark.createDataFrame([(b,) for b in baskets], "items array<string>"), "items")
    mining = mine(df, min_support, min_confidence, max_itemsets=100_000)
    ours = {frozenset(r["items"]): r["support"] for r in frequent_itemsets(mining).collect()}
    their_sets, their_rules = reference(baskets, min_support, min_confidence)
    theirs = dict(zip(their_sets["itemsets"], their_sets["support"], strict=True))
    assert len(ours) > 30 and set(ours) == set(theirs)
    assert all(ours[s] == pytest.approx(theirs[s]) for s in ours)

    # Every rule, multi-item consequents included, with mlxtend's metrics.
    metrics = ["antecedent support", "consequent support", "support", "confidence", "lift", "leverage"]
    metrics += ["conviction"]
    want = {(r["antecedents"], r["consequents"]): [r[m] for m in metrics] for _, r in their_rules.iterrows()}
    got = {
        (frozenset(r["antecedent"]), frozenset(r["consequent"])): [r[m.replace(" ", "_")] for m in metrics]
        for r in association_rules(mining).collect()
    }
    assert len(got) > 10 and set(got) == set(want)
    if min_support < 0.02:  # itemsets of three items: some rules have two-item consequents
        assert any(len(consequent) > 1 for _, consequent in got)
    for rule, values in got.items():
        for metric, ours_value, theirs_value in zip(metrics, values, want[rule], strict=True):
            if metric == "conviction" and ours_value is None:  # confidence 1: mlxtend says inf
                assert theirs_value == float("inf")
            else:
                assert ours_value == pytest.approx(theirs_value), (rule, metric)
    mining.release()


def test_baskets_drop_repeated_and_null_items_and_missing_baskets(spark):
    df = spark.createDataFrame([(["a", "a", None, "b"],), (None,), ([],)], "items array<string>")
    assert [sorted(r.items) for r in as_baskets(df, "items").collect()] == [["a", "b"], []]


def test_explosion_is_refused_before_mining_with_a_support_that_fits(spark):
    # 60 baskets of the same 20 items: every one of 2**20 - 1 subsets is frequent.
    items = [f"i{n}" for n in range(20)]
    df = as_baskets(spark.createDataFrame([(items,)] * 60, "items array<string>"), "items")
    with pytest.raises(ItemsetExplosion, match="yields more than 10,000 frequent itemsets") as refused:
        mine(df, 0.5, 0.5, max_itemsets=10_000)
    assert refused.value.suggestion is None  # even at support 1 every subset is frequent
    capped = mine(df, 0.5, 0.5, max_itemsets=10_000, max_length=2)  # 20 + 190 itemsets
    assert frequent_itemsets(capped).count() == 210 and capped.estimate_kind == "exact"
    capped.release()

    varied = shop_baskets(500)
    df = as_baskets(spark.createDataFrame([(b,) for b in varied], "items array<string>"), "items")
    with pytest.raises(ItemsetExplosion) as refused:
        mine(df, 0.002, 0.5, max_itemsets=100)
    suggested = refused.value.suggestion
    assert suggested > 0.002
    mined = mine(df, suggested, 0.5, max_itemsets=100)  # the suggestion is honoured
    assert frequent_itemsets(mined).count() == mined.itemset_estimate <= 100  # all 500 counted
    mined.release()


def test_long_real_baskets_pass_a_guard_that_counts_instead_of_bounding(spark):
    # A few hundred long baskets (about 60 of 120 items each): the loose bound is about 2**60
    # itemsets per basket; at support 0.1 the real count is small, and the guard counts it.
    rng = random.Random(3)
    catalogue = [f"p{i}" for i in range(120)]
    baskets = [rng.sample(catalogue, rng.randint(40, 80)) for _ in range(300)]
    df = as_baskets(spark.createDataFrame([(b,) for b in baskets], "items array<string>"), "items")
    mined = mine(df, 0.3, 0.5, max_itemsets=100_000)
    counted = frequent_itemsets(mined).count()
    theirs, _ = reference(baskets, 0.3, 0.5)
    assert mined.estimate_kind == "exact" and counted == mined.itemset_estimate == len(theirs)
    mined.release()


def test_a_sample_estimates_the_itemsets_of_many_baskets(spark, monkeypatch):
    monkeypatch.setattr("deepspark.stages.analytics.rules.GUARD_SAMPLE", 400)
    baskets = shop_baskets(3000) + [[f"x{i}" for i in range(30)]] * 2  # two long ones: a loose bound fails
    df = as_baskets(spark.createDataFrame([(b,) for b in baskets], "items array<string>"), "items")
    mined = mine(df, 0.02, 0.5, max_itemsets=10_000)
    counted = frequent_itemsets(mined).count()
    assert mined.estimate_kind == "sample"
    assert abs(mined.itemset_estimate - counted) <= 0.3 * counted
    mined.release()


def test_no_guard_when_max_itemsets_is_null(spark):
    items = [f"i{n}" for n in range(12)]
    df = as_baskets(spark.createDataFrame([(items,)] * 10, "items array<string>"), "items")
    mined = mine(df, 0.5, 0.5, max_itemsets=None)
    assert frequent_itemsets(mined).count() == 2**12 - 1 and mined.estimate_kind == "bound"
    mined.release()
