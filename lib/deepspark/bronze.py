"""What every bronze row carries besides its source's own columns: written by ingest, read
by clean (which drops them from silver and sends rows with a problem to quarantine)."""

METADATA = ["_source_file", "_batch_id", "_ingested_at", "_row_hash", "_redecoded"]
"""Where and when a row came in, a hash of its raw values (dedup and idempotence), and the
columns whose bytes were not UTF-8 and were decoded with the source's fallback charset."""

PROBLEMS = ["_raw_record", "_ingest_issue", "_ingest_rule"]
"""Set only on a malformed record: its raw text, what was wrong, and the rule it broke."""
