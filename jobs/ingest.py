"""spark-submit entry point for the ingest stage.

Usage: `spark-submit jobs/ingest.py [--env cluster] [--conf-dir DIR] [--run-id ID] [--set k=v]`.

Thin by design: it calls the same code as `deepspark ingest` (see lib/deepspark/cli.py).
"""

import sys

from deepspark.cli import main

if __name__ == "__main__":
    main(["ingest", *sys.argv[1:]])
