"""spark-submit entry point for the train stage.

Usage: `spark-submit jobs/train.py [--env cluster] [--conf-dir DIR] [--run-id ID] [--set k=v]`.

Thin by design: it calls the same code as `deepspark train` (see lib/deepspark/cli.py).
"""

import sys

from deepspark.cli import main

if __name__ == "__main__":
    main(["train", *sys.argv[1:]])
