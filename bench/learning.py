"""Deep-learning benchmarks, side by side in one run:

1. Petastorm reader rows/s vs a raw pyarrow scan of the same pinned files (target >= 0.8x);
2. training examples/s with 2 ranks vs 1 rank, one core each (target >= 1.8x), for each backend
   (Horovod, tf.distribute's MultiWorkerMirroredStrategy in a barrier stage);
3. Horovod with 1 rank (Petastorm stream) vs a plain tf-keras fit on in-memory arrays;
4. Horovod with 2 ranks vs the fit a user would run instead on the same 2 cores: one plain
   tf-keras process with 2 threads, same rows and epochs (epoch wall time; target <= 1.5x).

Training speeds are the epochs after the first (the first also traces the graph); each rank
and the plain fit are bound to one core of their own, data pipeline included.

Data: the 5,000 MNIST digits repeated ``--copies`` times as gold.digits (pixels as floats).
Every measurement is taken ``--repeats`` times; ``--json`` prints them all as one JSON object
(``bench/run.py`` drives it that way). Usage:

    python bench/learning.py [--copies 10] [--epochs 3] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from digits import pinned_digits
from stats import spread, timed

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def raw_pyarrow_scan(files: list[str], columns: list[str]) -> dict:
    """What Petastorm does for us, by hand and as fast as pyarrow allows: read each file, hand
    binary and list columns over as 2-D numpy arrays straight from the Arrow buffers."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyarrow import fs

    parts: dict[str, list] = {c: [] for c in columns}
    for uri in files:
        filesystem, path = fs.FileSystem.from_uri(uri)
        table = pq.read_table(path, columns=columns, filesystem=filesystem)
        for column in columns:
            chunked = table.column(column).combine_chunks()
            if pa.types.is_binary(chunked.type):  # fixed-size rows: one buffer, no copy
                offsets = np.frombuffer(chunked.buffers()[1], np.int32)[chunked.offset :][: len(chunked) + 1]
                data = np.frombuffer(chunked.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
                parts[column].append(data.reshape(len(chunked), -1))
            elif hasattr(chunked, "flatten"):
                values = chunked.flatten().to_numpy()
                parts[column].append(values.reshape(len(chunked), -1))
            else:
                parts[column].append(chunked.to_numpy())
    return {c: np.concatenate(p) for c, p in parts.items()}


def plain_fit(job_path: str, core: int, cores: int = 1) -> None:
    """In a fresh process on ``cores`` cores of its own (the ``core``-th group): tf-keras fit on
    the same data, no Horovod; prints examples/s of the epochs after the first."""
    from deepspark.stages.train.ranks import bind_cores

    bind_cores(core, cores)  # one core, as each Horovod rank gets; or all of them
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(cores)
    tf.config.threading.set_inter_op_parallelism_threads(cores)
    from deepspark.stages.train.data import read_rows
    from deepspark.stages.train.models import build_model
    from deepspark.tensors import tf_keras

    job = pickle.loads(Path(job_path).read_bytes())
    data = read_rows(job.train_files, [job.inputs.column, "label"], job.train_rows, "bench train")
    x, y = job.inputs.batch(data[job.inputs.column]), data["label"]
    model = build_model(job.spec, job.inputs)
    model.compile(tf_keras().optimizers.Adam(job.spec.learning_rate), "sparse_categorical_crossentropy")
    steps = job.steps_per_epoch(1)
    used = steps * job.spec.batch_size
    model.fit(x[:used], y[:used], batch_size=job.spec.batch_size, epochs=1, verbose=0)  # traces
    began = time.perf_counter()
    model.fit(x[:used], y[:used], batch_size=job.spec.batch_size, epochs=job.spec.epochs - 1, verbose=0)
    seconds = time.perf_counter() - began
    print(used * (job.spec.epochs - 1) / seconds)


def measure(copies: int, epochs: int, repeats: int, batch_size: int) -> dict:
    """Seconds of each scan and examples/s of each training run, ``repeats`` of each."""
    from deepspark.config import load_config
    from deepspark.session import get_spark
    from deepspark.stages.train import distribute, horovod
    from deepspark.stages.train.data import read_split
    from deepspark.stages.train.ranks import TrainingJob
    from deepspark.tables import Tables
    from deepspark.tensors import InputShape

    work = Path(tempfile.mkdtemp(prefix="deepspark-bench-learning-"))
    config = load_config(
        env="local",
        overrides=[
            f"run.data_root={work / 'data'}",
            f"spark.scratch_dir={work / 'spark'}",
            "spark.master=local[2]",
        ],
        environ={"DEEPSPARK_SECRET_PII_HMAC_KEY": "bench"},
    )
    spark = get_spark(config)
    tables = Tables(spark, config)
    pinned = pinned_digits(tables, config, work, copies)
    files, rows = pinned.files["train"], pinned.rows["train"]
    columns = ["pixels", "label"]
    result: dict = {
        "rows": rows,
        "files": len(files),
        "row_groups": pinned.row_groups["train"],
        "epochs": epochs,
    }
    scans = {
        "raw pyarrow": lambda: raw_pyarrow_scan(files, columns),
        "petastorm dummy": lambda: read_split(pinned, "train", columns, "dummy"),
        "petastorm process": lambda: read_split(pinned, "train", columns, "process"),
    }
    result["scan_seconds"] = {name: [timed(scan) for _ in range(repeats)] for name, scan in scans.items()}

    spec = config.train.models["digits_cnn"].model_copy(
        update={"epochs": epochs, "batch_size": batch_size, "warmup_epochs": 0, "decay_epochs": []}
    )
    job = TrainingJob(
        "bench",
        spec,
        InputShape("pixels", (28, 28, 1), 10),
        files,
        rows,
        [],
        0,
        str(work / "training"),
        threads=1,
        pin_cores=True,  # one core each, data pipeline included
    )
    backends = {"horovod": horovod.launch, "tf_distribute": distribute.launch}
    speeds: dict[str, list[float]] = {
        f"{backend} {ranks} rank{'s' if ranks > 1 else ''}": [] for backend in backends for ranks in (1, 2)
    }
    for attempt in range(repeats):
        for backend, launch in backends.items():
            for ranks in (1, 2) if attempt % 2 == 0 else (2, 1):
                folder = str(work / f"training-{backend}-{ranks}-{attempt}")
                (reports,) = launch([replace(job, folder=folder)], ranks, 120)
                # Examples/s of the epochs after the first, added over the ranks.
                speeds[f"{backend} {ranks} rank{'s' if ranks > 1 else ''}"].append(
                    sum(r.examples_per_second() for r in reports)
                )
    job_path = work / "job.pkl"
    job_path.write_bytes(pickle.dumps(job))

    def plain(*cores: int, threads: int = 1) -> float:
        """Examples/s of independent plain fits running at once, one per core group, added up."""
        command = [sys.executable, __file__, "--plain", str(job_path), "--threads", str(threads), "--core"]
        runs = [subprocess.Popen([*command, str(c)], stdout=subprocess.PIPE, text=True) for c in cores]
        return sum(float(run.communicate()[0].strip().splitlines()[-1]) for run in runs)

    speeds["plain fit, 1 core"] = [plain(0) for _ in range(repeats)]
    speeds["2 plain fits at once, 2 cores"] = [plain(0, 1) for _ in range(repeats)]
    speeds["plain fit, 2 cores, 2 threads"] = [plain(0, threads=2) for _ in range(repeats)]
    result["examples_per_second"] = speeds
    result["device"] = reports[0].device
    spark.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--copies", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64, help="per rank")
    parser.add_argument("--json", action="store_true", help="print the measurements as one JSON object")
    parser.add_argument("--plain", help=argparse.SUPPRESS)
    parser.add_argument("--core", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.plain:
        plain_fit(args.plain, args.core, args.threads)
        return
    result = measure(args.copies, args.epochs, args.repeats, args.batch_size)
    if args.json:
        print(json.dumps(result))
        return
    rows, scans, speeds = result["rows"], result["scan_seconds"], result["examples_per_second"]
    print(f"gold.digits train split: {rows:,} rows in {result['files']} files; medians of {args.repeats}")
    raw = spread(scans["raw pyarrow"])["median"]
    for name, times in scans.items():
        took = spread(times)["median"]
        print(f"   {name:<18} {rows / took:10,.0f} rows/s   ratio to raw pyarrow {raw / took:.2f}x")
    for name, values in speeds.items():
        print(f"   {name:<30} {spread(values)['median']:8,.0f} examples/s")


if __name__ == "__main__":
    main()
