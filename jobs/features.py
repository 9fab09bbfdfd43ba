"""spark-submit entry point for the features stage.

Usage: `spark-submit jobs/features.py [--env cluster] [--conf-dir DIR] [--run-id ID] [--set k=v]`.

Thin by design: it calls the same code as `deepspark features` (see lib/deepspark/cli.py).
"""

import sys

from deepspark.cli import main

if __name__ == "__main__":
    main(["features", *sys.argv[1:]])
