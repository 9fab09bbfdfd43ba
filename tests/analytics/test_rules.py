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

    # MLlib's rules have a single consequent; mlxtend's may have several.
    single = their_rules[their_rules["consequents"].map(len) == 1]
    metrics = ["support", "confidence", "lift", "leverage", "conviction"]
    want = {(r.antecedents, r.consequents): [getattr(r, m) for m in metrics] for r in single.itertuples()}
    got = {
        (frozenset(r["antecedent"]), frozenset(r["consequent"])): [r[m] for m in metrics]
        for r in association_rules(mining).collect()
    }
    assert len(got) > 10 and set(got) == set(want)
    for rule, values in got.items():
        for metric, ours_value, theirs_value in zip(metrics, values, want[rule], strict=True):
            if metric == "conviction" and ours_value is None:  # confidence 1: mlxtend says inf
                assert theirs_value == float("inf")
            else:
                assert ours_value == pytest.approx(theirs_value), (rule, metric)


def test_baskets_drop_repeated_and_null_items_and_missing_baskets(spark):
    df = spark.createDataFrame([(["a", "a", None, "b"],), (None,), ([],)], "items array<string>")
    assert [sorted(r.items) for r in as_baskets(df, "items").collect()] == [["a", "b"], []]


def test_explosion_is_refused_before_mining_with_a_support_that_fits(spark):
    # 60 baskets of the same 20 items: every one of 2**20 - 1 subsets is frequent.
    items = [f"i{n}" for n in range(20)]
    df = as_baskets(spark.createDataFrame([(items,)] * 60, "items array<string>"), "items")
    with pytest.raises(ItemsetExplosion) as refused:
        mine(df, 0.5, 0.5, max_itemsets=10_000)
    # Each basket holds 2**20 - 1 itemsets; each frequent one needs ceil(0.5 * 60) = 30 baskets.
    assert refused.value.bound == 60 * (2**20 - 1) / 30 and refused.value.suggestion is None
    varied = shop_baskets(500)
    df = as_baskets(spark.createDataFrame([(b,) for b in varied], "items array<string>"), "items")
    with pytest.raises(ItemsetExplosion) as refused:
        mine(df, 0.002, 0.5, max_itemsets=100)
    suggested = refused.value.suggestion
    assert suggested > 0.002
    mined = mine(df, suggested, 0.5, max_itemsets=100)  # the suggestion is honoured
    assert frequent_itemsets(mined).count() <= mined.itemset_bound <= 100


def test_long_baskets_of_rare_items_pass_the_guard_on_the_tight_bound(spark):
    # Each basket: two staples and 16 items no one else buys. Counting all items would allow
    # 2**18 itemsets per basket; only the staples are frequent, so at most 3 per basket are.
    baskets = [["milk", "bread", *[f"rare{b}_{i}" for i in range(16)]] for b in range(200)]
    df = as_baskets(spark.createDataFrame([(b,) for b in baskets], "items array<string>"), "items")
    mined = mine(df, 0.5, 0.5, max_itemsets=1_000)
    found = {frozenset(r["items"]) for r in frequent_itemsets(mined).collect()}
    assert found == {frozenset({"milk"}), frozenset({"bread"}), frozenset({"milk", "bread"})}
    assert mined.itemset_bound == pytest.approx(200 * 3 / 100)  # ceil(0.5 * 200) = 100 baskets each
