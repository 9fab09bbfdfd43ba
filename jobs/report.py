"""spark-submit entry point for the report stage.

Usage: `spark-submit jobs/report.py RUN_ID [--env cluster] [--conf-dir DIR]`: rebuilds the run report.

Thin by design: it calls the same code as `deepspark report` (see lib/deepspark/cli.py).
"""

import sys

from deepspark.cli import main

if __name__ == "__main__":
    main(["report", *sys.argv[1:]])
