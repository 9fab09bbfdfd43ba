"""spark-submit entry point for the generate stage.

Usage: `spark-submit jobs/generate.py [--env cluster] [--set k=v]`.

Thin by design: it calls the same code as `deepspark generate` (see lib/deepspark/cli.py).
"""

import sys

from deepspark.cli import main

if __name__ == "__main__":
    main(["generate", *sys.argv[1:]])
