"""A real Spark standalone cluster for tests: a master and 1-core workers started with
``spark-class`` from the installed pyspark on 127.0.0.1, stopped by their process ids; and
``submit``, which runs a job through deploy/submit.sh as a user would."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pyspark

from tests.small_conf import REPO

SPARK_HOME = Path(pyspark.__file__).parent
WORKERS = 2


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports, free now. Each socket stays bound until all are chosen: one
    closed at once can be handed out again (the master's RPC port and web UI port once came out
    the same, and the UI moved to the next port, where no one looked for it)."""
    with ExitStack() as bound:
        sockets = [bound.enter_context(socket.socket()) for _ in range(count)]
        for each in sockets:
            each.bind(("127.0.0.1", 0))
        return [each.getsockname()[1] for each in sockets]


def free_port() -> int:
    return free_ports(1)[0]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first, then theirs), from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        try:
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (ValueError, OSError, IndexError):  # not a process, or one that just ended
            continue
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _master_state(ui_port: int) -> dict:
    """The master's own view (its web UI's JSON): workers, running and completed applications."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=2) as response:
            return json.load(response)
    except OSError:
        return {}


@dataclass
class Standalone:
    url: str
    ui_port: int
    workers: list[subprocess.Popen] = field(default_factory=list)

    def completed_apps(self) -> list[dict]:
        return _master_state(self.ui_port).get("completedapps", [])

    def lose_host(self, worker: subprocess.Popen) -> list[int]:
        """SIGKILL ``worker`` and everything it started (executor JVMs, their Python workers and
        whatever those run), as when its machine goes down; returns the processes killed."""
        victims = [worker.pid, *descendants(worker.pid)]
        for pid in victims:
            with suppress(ProcessLookupError):  # ended with its parent already
                os.kill(pid, signal.SIGKILL)
        worker.wait(timeout=30)
        return victims


@contextmanager
def standalone_cluster(home: Path, workers: int = WORKERS):
    """A running master with ``workers`` 1-core workers (their logs in ``home``); applications
    submitted by :func:`submit` use two cores, so a third worker is a spare."""
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1"}
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    port, ui_port, *worker_ui_ports = free_ports(2 + workers)
    url = f"spark://127.0.0.1:{port}"
    commands = [
        [spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1"]
        + ["--port", str(port), "--webui-port", str(ui_port)]
    ] + [
        [spark_class, "org.apache.spark.deploy.worker.Worker", url, "--host", "127.0.0.1", "--cores", "1"]
        + ["--memory", "4g", "--work-dir", str(home / f"work-{i}"), "--webui-port", str(worker_ui_ports[i])]
        for i in range(workers)
    ]
    processes = []
    try:
        for i, command in enumerate(commands):
            log = (home / f"daemon-{i}.log").open("w")
            processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env))
            if i == 0:
                time.sleep(3)  # workers register with a master that listens
        deadline = time.monotonic() + 120
        while _master_state(ui_port).get("aliveworkers", 0) < workers:
            assert time.monotonic() < deadline, f"workers did not register; logs in {home}"
            assert all(p.poll() is None for p in processes), f"a daemon exited; logs in {home}"
            time.sleep(1)
        yield Standalone(url, ui_port, processes[1:])
    finally:
        for process in reversed(processes):  # spark-class execs java: these are the JVMs' ids
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def submit(
    master: str, job: str, conf: Path, *args: str, key: str = "cluster-test-key"
) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "MASTER": master,
        "TOTAL_EXECUTOR_CORES": str(WORKERS),
        "EXECUTOR_MEMORY": "1g",
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "DEEPSPARK_SECRET_PII_HMAC_KEY": key,
    }
    command = [str(REPO / "deploy" / "submit.sh"), job, "--conf-dir", str(conf), "--env", "small", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
