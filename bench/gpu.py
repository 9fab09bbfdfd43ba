"""GPU readiness, for a host with a GPU (``bench/gpu.sh`` runs it; about 3 minutes):

1. **Pinning**: a Spark local-cluster with one executor per GPU (up to 2), GPUs offered by the
   real discovery script (``deploy/gpu/discover_gpus.sh``), one Horovod rank per executor: each
   rank must train on the GPU Spark assigned it, and no two on the same one.
2. **Speed**: the shipped digits CNN's training images/s through deepspark (1 rank on its
   Spark-assigned GPU, reading the pinned gold table through Petastorm) against a plain tf-keras
   ``fit`` of the same model on the same GPU, arrays in memory: the anchor a user would pick.
   Both are the epochs after the first (which traces the graph); the plain fit runs after the
   Spark job, in a process of its own, so the two never share the GPU.

Prints the devices, both speeds and their ratio; exits 1 when a rank was not on its GPU.

    .venv/bin/python bench/gpu.py [--copies 8] [--epochs 3] [--precision mixed_float16] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from digits import pinned_digits

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
DISCOVERY = REPO / "deploy" / "gpu" / "discover_gpus.sh"


def gpu_count() -> int:
    """GPUs nvidia-smi lists (0 without it)."""
    if not shutil.which("nvidia-smi"):
        return 0
    listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False)
    return sum(line.startswith("GPU ") for line in listed.stdout.splitlines())


def plain_fit(job_path: str) -> None:
    """In a fresh process: the same model fitted by plain tf-keras on the GPU, arrays in memory."""
    import tensorflow as tf
    from deepspark.stages.train.data import read_rows
    from deepspark.stages.train.models import build_model
    from deepspark.tensors import tf_keras

    gpus = tf.config.list_physical_devices("GPU")
    tf.config.set_visible_devices(gpus[:1], "GPU")
    job = pickle.loads(Path(job_path).read_bytes())
    tf_keras().mixed_precision.set_global_policy(job.spec.precision)  # as the ranks do
    data = read_rows(job.train_files, [job.inputs.column, "label"], job.train_rows, "bench train")
    x, y = job.inputs.batch(data[job.inputs.column]), data["label"]
    model = build_model(job.spec, job.inputs)
    model.compile(tf_keras().optimizers.Adam(job.spec.learning_rate), "sparse_categorical_crossentropy")
    used = job.steps_per_epoch(1) * job.spec.batch_size  # the examples a 1-rank epoch trains on
    model.fit(x[:used], y[:used], batch_size=job.spec.batch_size, epochs=1, verbose=0)  # traces
    began = time.perf_counter()
    model.fit(x[:used], y[:used], batch_size=job.spec.batch_size, epochs=job.spec.epochs - 1, verbose=0)
    print(json.dumps({"examples_per_second": used * (job.spec.epochs - 1) / (time.perf_counter() - began)}))


def measure(
    copies: int, epochs: int, gpus: int, discovery: Path = DISCOVERY, precision: str = "float32"
) -> dict:
    from deepspark.config import load_config
    from deepspark.session import get_spark
    from deepspark.stages.train.horovod import launch
    from deepspark.stages.train.ranks import TrainingJob
    from deepspark.tables import Tables
    from deepspark.tensors import InputShape

    work = Path(tempfile.mkdtemp(prefix="deepspark-bench-gpu-"))
    executors = min(gpus, 2)
    cores = max(1, (os.cpu_count() or 2) // executors)
    config = load_config(
        env="local",
        overrides=[
            f"run.data_root={work / 'data'}",
            f"spark.scratch_dir={work / 'spark'}",
            f"spark.master=local-cluster[{executors},{cores},4096]",
            "spark.executor_gpus=1",
            f"spark.gpu_discovery_script={discovery}",
        ],
        environ={"DEEPSPARK_SECRET_PII_HMAC_KEY": "bench"},
    )
    conf = {
        **config.spark.conf,
        "spark.worker.resource.gpu.amount": str(executors),
        "spark.worker.resource.gpu.discoveryScript": str(discovery),
    }
    config = config.model_copy(update={"spark": config.spark.model_copy(update={"conf": conf})})
    spark = get_spark(config)
    tables = Tables(spark, config)
    pinned = pinned_digits(tables, config, work, copies)
    spec = config.train.models["digits_cnn"].model_copy(
        update={
            "epochs": epochs,
            "warmup_epochs": 0,
            "decay_epochs": [],
            "early_stopping": None,
            "precision": precision,
        }
    )
    job = TrainingJob(
        "bench-gpu",
        spec,
        InputShape("pixels", (28, 28, 1), 10),
        pinned.files["train"],
        pinned.rows["train"],
        [],
        0,
        str(work / "training"),
    )
    (pinning,) = launch(
        [replace(job, spec=spec.model_copy(update={"epochs": 1}), folder=str(work / "pin"))], executors, 300
    )
    (speed,) = launch([replace(job, folder=str(work / "speed"))], 1, 300)
    spark.stop()
    job_path = work / "job.pkl"
    job_path.write_bytes(pickle.dumps(job))
    plain = subprocess.run(
        [sys.executable, __file__, "--plain", str(job_path)], capture_output=True, text=True, check=False
    )
    if plain.returncode != 0:
        sys.exit(f"the plain tf-keras fit failed:\n{plain.stderr[-3000:]}")
    return {
        "gpus": gpus,
        "rows": pinned.rows["train"],
        "epochs": epochs,
        "batch_size": spec.batch_size,
        "precision": precision,
        "pinning": sorted(r.device for r in pinning),
        "device": speed[0].device,
        "deepspark": speed[0].examples_per_second(),
        "plain": json.loads(plain.stdout.strip().splitlines()[-1])["examples_per_second"],
    }


def pinned_right(devices: list[str]) -> bool:
    """Every rank on a GPU Spark assigned, none sharing one."""
    return all(d.endswith("(assigned by Spark)") for d in devices) and len(set(devices)) == len(devices)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=8, help="the 5,000 digits, this many times")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--precision", default="float32", choices=["float32", "mixed_float16", "mixed_bfloat16"]
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--plain", help=argparse.SUPPRESS)
    parser.add_argument(
        "--fake-gpus",
        type=int,
        default=0,
        help="try the harness on a host without a GPU: Spark is offered this many GPUs that "
        "TensorFlow cannot see, so every rank falls back to CPU and pinning reports failure",
    )
    args = parser.parse_args()
    if args.plain:
        plain_fit(args.plain)
        return
    discovery, gpus = DISCOVERY, gpu_count()
    if args.fake_gpus:
        addresses = ", ".join(f'"{i}"' for i in range(args.fake_gpus))
        discovery = Path(tempfile.mkdtemp(prefix="deepspark-fake-gpus-")) / "gpus.sh"
        discovery.write_text(f'#!/usr/bin/env bash\necho \'{{"name": "gpu", "addresses": [{addresses}]}}\'\n')
        discovery.chmod(0o755)
        gpus = args.fake_gpus
    if not gpus:
        sys.exit("bench/gpu.py: nvidia-smi lists no GPU here; run it on a host with one")
    result = measure(args.copies, args.epochs, gpus, discovery, args.precision)
    result["pinned"] = pinned_right(result["pinning"])
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['gpus']} GPU(s); {result['rows']:,} training digits, batch {result['batch_size']}, "
            f"{args.precision}"
        )
        print(f"  pinning ({len(result['pinning'])} ranks): {', '.join(result['pinning'])}")
        print(f"  speed rank: {result['device']}")
        print(f"  deepspark (Horovod 1 rank, Petastorm) {result['deepspark']:10,.0f} images/s")
        print(f"  plain tf-keras fit, same GPU          {result['plain']:10,.0f} images/s")
        print(f"  ratio deepspark / plain               {result['deepspark'] / result['plain']:10.2f}x")
    if not result["pinned"]:
        sys.exit(f"a rank was not on the GPU Spark assigned it: {result['pinning']}")


if __name__ == "__main__":
    main()
