"""spark-submit entry point for the whole pipeline.

Usage: `spark-submit jobs/run_pipeline.py [--env cluster] [--run-id ID] [--only a,b | --from stage]`.

Runs every stage in order (same code as `deepspark run`); prints the run summary path last.
"""

import sys

from deepspark.cli import main

if __name__ == "__main__":
    main(["run", *sys.argv[1:]])
