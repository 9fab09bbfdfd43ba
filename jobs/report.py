"""spark-submit entry point for the report stage.

Usage: `spark-submit jobs/report.py --run-id ID [--env cluster] [--conf-dir DIR]`.

Runs the report stage of that run (same code as `deepspark run --only report`), so the stage is
recorded with the others; `deepspark report ID` rebuilds a report without Spark.
"""

import sys

from deepspark.cli import main

if __name__ == "__main__":
    main(["run", "--only", "report", *sys.argv[1:]])
