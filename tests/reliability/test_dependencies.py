"""Known advisories: every pinned package (both locks, and each venv's pip and setuptools) is at
or past the fixed version of each advisory in deploy/env/advisories.toml, or the advisory is
accepted for that environment with the reason it does not apply. Offline: see that file for why."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys

from packaging.version import Version

from tests.small_conf import REPO

AUDIT = REPO / "deploy" / "env" / "audit.py"


def run_audit(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(AUDIT), *args], capture_output=True, text=True, timeout=120)


def test_no_pinned_package_has_an_open_advisory():
    done = run_audit()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "VULNERABLE" not in done.stdout and ": 0 open," in done.stdout


def test_a_pyarrow_before_14_0_1_is_flagged(tmp_path):
    lock = tmp_path / "old.lock"
    lock.write_text("pyarrow==14.0.0\nnumpy==1.26.4\n")
    done = run_audit("--main-lock", str(lock), "--main-venv", str(tmp_path / "none"))
    assert done.returncode == 1
    assert "VULNERABLE main     pyarrow 14.0.0 < 14.0.1: CVE-2023-47248" in done.stdout


def test_the_running_environment_is_the_locked_one_for_pyarrow():
    installed = importlib.metadata.version("pyarrow")
    assert Version(installed) >= Version("14.0.1")
    assert f"pyarrow=={installed}\n" in (REPO / "deploy" / "env" / "requirements.lock").read_text()
