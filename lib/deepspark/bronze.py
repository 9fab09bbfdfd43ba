"""What every bronze row carries besides its source's own columns: written by ingest, read
by clean (which drops them from silver and sends rows with a problem to quarantine)."""

METADATA = ["_source_file", "_batch_id", "_ingested_at", "_row_hash", "_redecoded"]
"""Where and when a row came in, a hash of its raw values (dedup and idempotence), and the
columns whose bytes were not UTF-8 and were decoded with the source's fallback charset."""

PROBLEMS = ["_raw_record", "_ingest_issue", "_ingest_rule"]
"""Set only on a malformed record: its raw text, what was wrong, and the rule it broke."""

MALFORMED, SCHEMA_DRIFT = "malformed", "schema_drift"
INGEST_ISSUES = (MALFORMED, SCHEMA_DRIFT)
"""What ``_ingest_issue`` holds: a record the reader could not parse as declared, or a file whose
header or keys are not the declared ones. Clean quarantines them under the same reasons."""
