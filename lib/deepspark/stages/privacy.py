"""PII protection, applied by the clean stage before anything reaches silver.

Methods (``clean.datasets.<d>.columns.<c>.privacy``):

* ``hmac``: keyed HMAC-SHA256, hex. The same value and key give the same digest in every
  table, so joins still work; without the key the digest cannot be reversed or recomputed.
  Built from Spark's own ``sha2`` over binary (no Python UDF): the RFC 2104 construction.
* ``mask``: every character but the last ``keep`` becomes ``*``.
* ``age_band``: a date of birth becomes an age band (``25-34``).
* ``prefix``: the first ``length`` characters (a postcode's area).
* ``drop``: the column is removed.

The key comes from ``secrets.pii_hmac_key`` (``DEEPSPARK_SECRET_PII_HMAC_KEY`` or the git-ignored
``conf/local/secrets.yaml``); it is never logged.
"""

from __future__ import annotations

import hashlib

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from deepspark.config import ColumnRule, Privacy

BLOCK = 64  # SHA-256 block size in bytes
AGE_BANDS = [(18, "<18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (55, "45-54"), (65, "55-64")]


class MissingKeyError(ValueError):
    """An hmac rule is configured but no key was given."""


def hmac_sha256(value: Column, key: bytes) -> Column:
    """HMAC-SHA256(key, utf8(value)) as 64 hex characters; null stays null."""
    if len(key) > BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(BLOCK, b"\0")
    inner_pad = bytearray(b ^ 0x36 for b in key)
    outer_pad = bytearray(b ^ 0x5C for b in key)
    inner = F.unhex(F.sha2(F.concat(F.lit(inner_pad), F.encode(value, "UTF-8")), 256))
    return F.sha2(F.concat(F.lit(outer_pad), inner), 256)


def mask(value: Column, keep: int) -> Column:
    hidden = F.greatest(F.length(value) - F.lit(keep), F.lit(0))
    tail = F.substring(value, -keep, keep) if keep else F.lit("")
    return F.when(value.isNotNull(), F.concat(F.repeat(F.lit("*"), hidden), tail))


def age_band(birth_date: Column) -> Column:
    age = F.floor(F.months_between(F.current_date(), birth_date) / 12)
    band = F.when(age < AGE_BANDS[0][0], AGE_BANDS[0][1])
    for upper, label in AGE_BANDS[1:]:
        band = band.when(age < upper, label)
    return F.when(birth_date.isNotNull(), band.otherwise("65+"))


def output_name(column: str, rule: Privacy) -> str:
    suffix = {"hmac": "_hmac", "mask": "_masked", "prefix": "_prefix"}
    if rule.output:
        return rule.output
    return "age_band" if rule.method == "age_band" else column + suffix.get(rule.method, "")


def protect(df: DataFrame, columns: dict[str, ColumnRule], key: bytes | None) -> DataFrame:
    """Replace every column with a privacy rule by its protected form (or drop it)."""
    rules = {c: r.privacy for c, r in columns.items() if r.privacy is not None and c in df.columns}
    if any(r.method == "hmac" for r in rules.values()) and not key:
        raise MissingKeyError(
            "an hmac privacy rule needs secrets.pii_hmac_key: set DEEPSPARK_SECRET_PII_HMAC_KEY "
            "or add pii_hmac_key to conf/local/secrets.yaml (`make run` creates one)"
        )
    selected = []
    for name in df.columns:
        rule = rules.get(name)
        column = F.col(f"`{name}`")
        if rule is None:
            selected.append(column)
        elif rule.method == "hmac":
            selected.append(hmac_sha256(column.cast("string"), key).alias(output_name(name, rule)))
        elif rule.method == "mask":
            selected.append(mask(column.cast("string"), rule.keep).alias(output_name(name, rule)))
        elif rule.method == "age_band":
            selected.append(age_band(column.cast("date")).alias(output_name(name, rule)))
        elif rule.method == "prefix":
            selected.append(F.substring(column.cast("string"), 1, rule.length).alias(output_name(name, rule)))
        # drop: not selected
    return df.select(*selected)
