"""spark-submit entry point for the clean stage.

Usage: `spark-submit jobs/clean.py [--env cluster] [--conf-dir DIR] [--run-id ID] [--set k=v]`.

Thin by design: it calls the same code as `deepspark clean` (see lib/deepspark/cli.py).
"""

import sys

from deepspark.cli import main

if __name__ == "__main__":
    main(["clean", *sys.argv[1:]])
