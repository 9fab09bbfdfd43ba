"""spark-submit entry point for the validate stage.

Usage: `spark-submit jobs/validate.py [--env cluster] [--conf-dir DIR] [--run-id ID] [--set k=v]`.

Thin by design: it calls the same code as `deepspark validate` (see lib/deepspark/cli.py).
"""

import sys

from deepspark.cli import main

if __name__ == "__main__":
    main(["validate", *sys.argv[1:]])
