"""The clean stage: bronze -> silver (dedup, types, nulls, outliers, normalization, PII), every
rejected row to quarantine with its reason."""
