"""The single-node peer a user might pick at this size: DuckDB, the sample shop's ingest, clean and
``customer_activity`` aggregation in SQL, written to Parquet.

What it does not do, and deepspark does: keep malformed records (DuckDB's ``ignore_errors``
drops them), decode each value's charset (the Latin-1 export is read as Latin-1 and UTF-8 as
UTF-8, by folder), Delta tables, merges and a quarantine table; approximate quantiles are exact
here. ``anchors.py`` compares its silver on rows and keys only.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from stats import timed

CUSTOMERS = """
CREATE TABLE customers AS SELECT *, 'utf-8' AS _charset FROM read_csv('{landing}/customers/utf8/part-*',
  header = true, all_varchar = true, ignore_errors = true)
UNION ALL BY NAME SELECT *, 'latin-1' FROM read_csv('{landing}/customers/latin1/part-*',
  header = true, all_varchar = true, encoding = 'latin-1', ignore_errors = true)
UNION ALL BY NAME SELECT * FROM read_csv('{landing}/customers/broken/part-*',
  header = true, all_varchar = true, ignore_errors = true, null_padding = false)
"""
ORDERS = """
CREATE TABLE orders AS SELECT * REPLACE (CAST(items AS VARCHAR[]) AS items)
FROM read_json('{landing}/orders/part-*', format = 'newline_delimited',
  columns = {{order_id: 'VARCHAR', customer_id: 'VARCHAR', order_ts: 'VARCHAR', items: 'JSON',
             amount: 'VARCHAR', channel: 'VARCHAR'}}, ignore_errors = true)
WHERE items IS NULL OR json_type(items) = 'ARRAY'  -- items as text would be cast to a list
"""
REVIEWS = """
CREATE TABLE reviews AS SELECT * FROM read_csv('{landing}/reviews/part-*', header = true,
  all_varchar = true, escape = '"', ignore_errors = true)
"""

CLEAN_CUSTOMERS = """
CREATE TABLE c AS SELECT DISTINCT trim(customer_id) AS customer_id, trim(first_name) AS first_name,
  trim(last_name) AS last_name, lower(trim(email)) AS email, trim(phone) AS phone,
  trim(birth_date) AS birth_text, trim(postcode) AS postcode, upper(trim(country)) AS country,
  trim(signup_ts) AS signup_text FROM customers;
CREATE TABLE c_typed AS SELECT *, try_cast(customer_id AS BIGINT) AS id,
  CAST(try_strptime(birth_text, ['%Y-%m-%d', '%m/%d/%Y', '%d.%m.%Y']) AS DATE) AS birth,
  try_strptime(signup_text, '%Y-%m-%d %H:%M:%S') AS signup FROM c;
CREATE TABLE c_tagged AS SELECT *, CASE
  WHEN id IS NULL THEN 'customer_id'
  WHEN birth_text IS NOT NULL AND birth IS NULL THEN 'type_coercion'
  WHEN birth < DATE '1900-01-01' OR birth > current_date THEN 'out_of_range'
  WHEN signup_text IS NOT NULL AND signup IS NULL THEN 'type_coercion'
  WHEN signup > now() THEN 'out_of_range' END AS reason FROM c_typed;
CREATE TABLE silver_customers AS SELECT id AS customer_id,
  sha256(unhex('{outer}') || unhex(sha256(unhex('{inner}') || encode(email)))) AS email_hmac,
  CASE WHEN phone IS NOT NULL THEN repeat('*', greatest(length(phone) - 4, 0)) || right(phone, 4) END
    AS phone_masked,
  CASE WHEN birth IS NULL THEN NULL
    WHEN date_diff('month', birth, current_date) // 12 < 18 THEN '<18'
    WHEN date_diff('month', birth, current_date) // 12 < 25 THEN '18-24'
    WHEN date_diff('month', birth, current_date) // 12 < 35 THEN '25-34'
    WHEN date_diff('month', birth, current_date) // 12 < 45 THEN '35-44'
    WHEN date_diff('month', birth, current_date) // 12 < 55 THEN '45-54'
    WHEN date_diff('month', birth, current_date) // 12 < 65 THEN '55-64' ELSE '65+' END AS age_band,
  left(postcode, 2) AS postcode_prefix, coalesce(country, '??') AS country, signup AS signup_ts
FROM c_tagged WHERE reason IS NULL
QUALIFY row_number() OVER (PARTITION BY id ORDER BY signup DESC NULLS LAST, email, phone) = 1;
"""
CLEAN_ORDERS = """
CREATE TABLE o AS SELECT DISTINCT trim(order_id) AS order_id, trim(customer_id) AS customer_id,
  trim(order_ts) AS order_ts, items, trim(amount) AS amount, lower(trim(channel)) AS channel FROM orders;
CREATE TABLE o_tagged AS SELECT *, CASE
  WHEN id IS NULL OR customer IS NULL THEN 'type_or_null'
  WHEN order_ts IS NOT NULL AND ts IS NULL THEN 'type_coercion'
  WHEN ts > now() THEN 'out_of_range'
  WHEN ts IS NULL THEN 'null'
  WHEN amount IS NOT NULL AND value IS NULL THEN 'type_coercion'
  WHEN isnan(value) OR isinf(value) THEN 'not_finite'
  WHEN value < 0 THEN 'out_of_range'
  WHEN channel NOT IN ('web', 'app', 'store') THEN 'not_allowed'
  WHEN customer NOT IN (SELECT customer_id FROM silver_customers) THEN 'orphan' END AS reason
FROM (SELECT *, try_cast(order_id AS BIGINT) AS id, try_cast(customer_id AS BIGINT) AS customer,
        coalesce(try_strptime(order_ts, '%Y-%m-%dT%H:%M:%S'),
                 try_strptime(order_ts, '%Y-%m-%d %H:%M:%S')) AS ts,
        try_cast(amount AS DOUBLE) AS value FROM o);
CREATE TABLE bounds AS SELECT q1 - 3 * (q3 - q1) AS low, q3 + 3 * (q3 - q1) AS high FROM (
  SELECT quantile_cont(value, 0.25) AS q1, quantile_cont(value, 0.75) AS q3
  FROM o_tagged WHERE reason IS NULL);
CREATE TABLE o_capped AS SELECT o_tagged.* REPLACE (least(greatest(value, low), high) AS value)
FROM o_tagged, bounds WHERE reason IS NULL;
CREATE TABLE silver_orders AS SELECT id AS order_id, customer AS customer_id, ts AS order_ts, items,
  coalesce(value, (SELECT median(value) FROM o_capped)) AS amount,
  coalesce(channel, (SELECT mode(channel) FROM o_capped)) AS channel
FROM o_capped QUALIFY row_number() OVER (PARTITION BY id ORDER BY ts DESC NULLS LAST, amount, channel) = 1;
"""
CLEAN_REVIEWS = """
CREATE TABLE r AS SELECT DISTINCT trim(review_id) AS review_id, trim(customer_id) AS customer_id,
  trim(product) AS product, trim(rating) AS rating,
  nfc_normalize(regexp_replace(trim(text), '\\s+', ' ', 'g')) AS text, trim(posted_at) AS posted_at
FROM reviews;
CREATE TABLE silver_reviews AS SELECT id AS review_id, customer AS customer_id, product, stars AS rating,
  text, ts AS posted_at FROM (
  SELECT *, try_cast(review_id AS BIGINT) AS id, try_cast(customer_id AS BIGINT) AS customer,
    try_cast(rating AS INTEGER) AS stars, try_strptime(posted_at, '%Y-%m-%d %H:%M:%S') AS ts FROM r)
WHERE id IS NOT NULL AND NOT (customer_id IS NOT NULL AND customer IS NULL)
  AND stars BETWEEN 1 AND 5 AND NOT (posted_at IS NOT NULL AND ts IS NULL) AND coalesce(ts <= now(), true)
  AND (customer IS NULL OR customer IN (SELECT customer_id FROM silver_customers))
QUALIFY row_number() OVER (PARTITION BY id ORDER BY ts DESC NULLS LAST, text) = 1;
"""
ACTIVITY = """
CREATE TABLE activity AS
WITH valid AS (SELECT * FROM silver_orders WHERE amount >= 0),
as_of AS (SELECT max(order_ts) AS as_of FROM valid),
per_customer AS (
  SELECT customer_id, max(order_ts) AS last_order_ts, count(1) AS frequency,
         round(sum(amount), 2) AS monetary, round(avg(len(items)), 3) AS avg_basket_size,
         mode(channel) AS favourite_channel
  FROM valid GROUP BY customer_id)
SELECT p.customer_id, c.country, c.age_band, c.signup_ts,
       date_diff('day', p.last_order_ts, a.as_of) AS recency_days,
       CAST(p.frequency AS DOUBLE) AS frequency, p.monetary, p.avg_basket_size,
       p.favourite_channel, greatest(date_diff('day', c.signup_ts, a.as_of), 0) AS tenure_days
FROM per_customer p JOIN silver_customers c ON p.customer_id = c.customer_id CROSS JOIN as_of a
"""
KEYS = {"customers": "customer_id", "orders": "order_id", "reviews": "review_id"}


def hmac_pads(key: bytes) -> tuple[str, str]:
    key = (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in key).hex(), bytes(b ^ 0x5C for b in key).hex()


def run(landing: Path, out: Path, key: bytes) -> dict:
    """Seconds of each stage, bronze and silver row counts and the silver tables' key digests."""
    import duckdb

    db = duckdb.connect(str(out / "shop.duckdb"), config={"threads": 2})
    inner, outer = hmac_pads(key)

    def bronze() -> None:
        for sql in (CUSTOMERS, ORDERS, REVIEWS):
            db.execute(sql.format(landing=landing))

    def clean() -> None:
        db.execute(CLEAN_CUSTOMERS.format(inner=inner, outer=outer))
        db.execute(CLEAN_ORDERS)
        db.execute(CLEAN_REVIEWS)
        for table in KEYS:
            db.execute(f"COPY silver_{table} TO '{out / table}.parquet' (FORMAT parquet)")

    def features() -> None:
        db.execute(ACTIVITY)
        db.execute(f"COPY activity TO '{out / 'activity'}.parquet' (FORMAT parquet)")

    stages = {"ingest": bronze, "clean": clean, "features": features}
    seconds = {name: round(timed(stage), 2) for name, stage in stages.items()}
    silver = {}
    for table, column in KEYS.items():
        rows, keys = db.execute(f"SELECT count(*), sum({column}) FROM silver_{table}").fetchone()
        silver[table] = {"rows": rows, "keys": str(keys)}
    bronze_rows = {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in KEYS}
    db.close()
    return {"seconds": seconds, "silver": silver, "bronze_rows": bronze_rows}
