"""spark-submit entry point for the predict stage.

Usage: `spark-submit jobs/predict.py [--env cluster] [--conf-dir DIR] [--run-id ID] [--set k=v]`.

Thin by design: it calls the same code as `deepspark predict` (see lib/deepspark/cli.py).
"""

import sys

from deepspark.cli import main

if __name__ == "__main__":
    main(["predict", *sys.argv[1:]])
