"""spark-submit entry point for the analytics stage.

Usage: `spark-submit jobs/analytics.py [--part kmeans|rules|trees] [--env cluster] [--run-id ID] [--set k=v]`.

Thin by design: it calls the same code as `deepspark analytics` (see lib/deepspark/cli.py).
"""

import sys

from deepspark.cli import main

if __name__ == "__main__":
    main(["analytics", *sys.argv[1:]])
