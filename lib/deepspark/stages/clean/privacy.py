"""PII protection, applied by the clean stage before anything reaches silver.

Methods (``clean.datasets.<d>.columns.<c>.privacy``):

* ``hmac``: keyed HMAC-SHA256, hex. The same value and key give the same digest in every
  table, so joins still work; without the key the digest cannot be reversed or recomputed.
  Built from Spark's own ``sha2`` over binary (no Python UDF): the RFC 2104 construction. The
  key's pads reach the executors as a broadcast row, never as literals in a query plan.
* ``mask``: every character but the last ``keep`` becomes ``*``.
* ``age_band``: a date of birth becomes an age band (``25-34``).
* ``prefix``: the first ``length`` characters (a postcode's area).
* ``drop``: the column is removed.

The key comes from ``secrets.pii_hmac_key`` (``DEEPSPARK_SECRET_PII_HMAC_KEY`` or the git-ignored
``conf/local/secrets.yaml``); it is never logged.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from deepspark.config import ColumnRule, Privacy

BLOCK = 64  # SHA-256 block size in bytes
INNER_PAD, OUTER_PAD = "_hmac_inner_pad", "_hmac_outer_pad"
AGE_BANDS = [(18, "<18"), (25, "18-24"), (35, "25-34"), (45, "35-44"), (55, "45-54"), (65, "55-64")]


class MissingKeyError(ValueError):
    """An hmac rule is configured but no key was given."""


def hmac_pads(key: bytes) -> tuple[bytes, bytes]:
    """The RFC 2104 inner and outer pads of ``key``: the key itself, XORed with constants."""
    if len(key) > BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def hmac_sha256(value: Column, inner_pad: Column, outer_pad: Column) -> Column:
    """HMAC-SHA256(key, utf8(value)) as 64 hex characters, given the key's pads as columns;
    null stays null."""
    inner = F.unhex(F.sha2(F.concat(inner_pad, F.encode(value, "UTF-8")), 256))
    return F.sha2(F.concat(outer_pad, inner), 256)


def with_key_pads(df: DataFrame, key: bytes) -> DataFrame:
    """``df`` with the key's pads as two columns from a broadcast one-row frame. As literals they
    would be printed in every query plan (Spark UI, event logs, explain); a local relation's
    rows are not."""
    inner_pad, outer_pad = hmac_pads(key)
    pads = df.sparkSession.createDataFrame(
        [(inner_pad, outer_pad)], f"{INNER_PAD} binary, {OUTER_PAD} binary"
    )
    return df.crossJoin(F.broadcast(pads))


def mask(value: Column, keep: int) -> Column:
    hidden = F.greatest(F.length(value) - F.lit(keep), F.lit(0))
    tail = F.substring(value, -keep, keep) if keep else F.lit("")
    return F.when(value.isNotNull(), F.concat(F.repeat(F.lit("*"), hidden), tail))


def age_band(birth_date: Column, as_of: datetime) -> Column:
    """The band of the age on ``as_of``'s date (the run's, not the day the row is computed)."""
    age = F.floor(F.months_between(F.lit(as_of).cast("date"), birth_date) / 12)
    band = F.when(age < AGE_BANDS[0][0], AGE_BANDS[0][1])
    for upper, label in AGE_BANDS[1:]:
        band = band.when(age < upper, label)
    return F.when(birth_date.isNotNull(), band.otherwise("65+"))


def output_name(column: str, rule: Privacy) -> str:
    suffix = {"hmac": "_hmac", "mask": "_masked", "prefix": "_prefix"}
    if rule.output:
        return rule.output
    return "age_band" if rule.method == "age_band" else column + suffix.get(rule.method, "")


def protect(df: DataFrame, columns: dict[str, ColumnRule], key: bytes | None, as_of: datetime) -> DataFrame:
    """Replace every column with a privacy rule by its protected form (or drop it); ages are
    banded as of ``as_of``."""
    rules = {c: r.privacy for c, r in columns.items() if r.privacy is not None and c in df.columns}
    keyed = any(r.method == "hmac" for r in rules.values())
    if keyed and not key:
        raise MissingKeyError(
            "an hmac privacy rule needs secrets.pii_hmac_key: set DEEPSPARK_SECRET_PII_HMAC_KEY "
            "or add pii_hmac_key to conf/local/secrets.yaml (`make run` creates one)"
        )
    if keyed:
        df = with_key_pads(df, key)
    selected = []
    for name in df.columns:
        if name in (INNER_PAD, OUTER_PAD):
            continue
        rule = rules.get(name)
        column = F.col(f"`{name}`")
        if rule is None:
            selected.append(column)
        elif rule.method == "hmac":
            digest = hmac_sha256(column.cast("string"), F.col(INNER_PAD), F.col(OUTER_PAD))
            selected.append(digest.alias(output_name(name, rule)))
        elif rule.method == "mask":
            selected.append(mask(column.cast("string"), rule.keep).alias(output_name(name, rule)))
        elif rule.method == "age_band":
            selected.append(age_band(column.cast("date"), as_of).alias(output_name(name, rule)))
        elif rule.method == "prefix":
            selected.append(F.substring(column.cast("string"), 1, rule.length).alias(output_name(name, rule)))
        # drop: not selected
    return df.select(*selected)
