"""Stage generate: writes the sample retail domain and the digits as raw landing files.

Input: none. Output: files under ``<data_root>/landing/`` (customers CSV, orders JSON lines,
reviews CSV, digits parquet). Parameters: ``generate.*``. Skipped without a ``generate`` section
(a project lands its own files), and when landing data exists, so re-running the pipeline never
re-lands the same records under new file names.
"""

from __future__ import annotations

from deepspark.run import Run, StageResult, skipped
from deepspark.stages.generate.digits import write_digits
from deepspark.stages.generate.retail import write_landing


def generate(run: Run, customers: int | None = None, force: bool = False) -> StageResult:
    landing, config = run.config.landing_root, run.config.generate
    if config is None:
        return skipped("no generate section in conf: the project lands its own files")
    if landing.is_dir() and any(landing.iterdir()) and not force:
        return StageResult(notes=[f"landing data already present in {landing}; kept"])
    files = write_landing(run.spark, config, landing, run.config.run.seed, customers)
    digits = write_digits(config.digits, landing / "digits")
    count = customers or config.customers
    return StageResult(
        rows_out=count,
        metrics={
            "customers": count,
            "orders": round(count * config.orders_per_customer),
            "reviews": round(count * config.reviews_per_customer),
            "landing": {**files.as_dict(), "digits": str(digits)},
        },
    )
