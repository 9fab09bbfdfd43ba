#!/usr/bin/env python3
"""Check every pinned package against deploy/env/advisories.toml, offline.

Environments: ``main`` (deploy/env/requirements.lock, plus pip and setuptools of .venv) and
``airflow`` (deploy/airflow/constraints.txt, plus pip and setuptools of .airflow-venv when it
exists). Prints one line per advisory that matches a pinned version; exits 1 when any of them is
not accepted for that environment.

Usage: deploy/env/audit.py [--main-lock FILE] [--airflow-lock FILE]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
ADVISORIES = ROOT / "deploy" / "env" / "advisories.toml"
TOOLING = ("pip", "setuptools")  # installed in each venv, but never in a frozen lock
TOOLING_VERSIONS = "import importlib.metadata as m; print(m.version('pip'), m.version('setuptools'))"


@dataclass(frozen=True)
class Finding:
    environment: str
    package: str
    version: str
    advisory: str
    fixed: str
    summary: str
    accepted: bool


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(lock: Path) -> dict[str, str]:
    """``name==version`` lines of a pip lock or constraints file, by normalized name."""
    pins = {}
    for line in lock.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9._-]+)==([^\s;#]+)", line.strip())
        if match:
            pins[normalized(match[1])] = match[2]
    return pins


def tooling_of(venv: Path) -> dict[str, str]:
    """pip's and setuptools' versions in a venv (empty when the venv is not there)."""
    python = venv / "bin" / "python"
    if not python.exists():
        return {}
    found = subprocess.run([python, "-c", TOOLING_VERSIONS], capture_output=True, text=True, check=True)
    return dict(zip(TOOLING, found.stdout.split(), strict=True))


def audit(pins_by_environment: dict[str, dict[str, str]], advisories: list[dict]) -> list[Finding]:
    findings = []
    for environment, pins in pins_by_environment.items():
        for advisory in advisories:
            version = pins.get(normalized(advisory["package"]))
            if version is not None and Version(version) < Version(advisory["fixed"]):
                findings.append(
                    Finding(
                        environment,
                        advisory["package"],
                        version,
                        advisory["id"],
                        advisory["fixed"],
                        advisory["summary"],
                        environment in advisory.get("accepted_in", []),
                    )
                )
    return findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--main-lock", type=Path, default=ROOT / "deploy" / "env" / "requirements.lock")
    parser.add_argument("--airflow-lock", type=Path, default=ROOT / "deploy" / "airflow" / "constraints.txt")
    parser.add_argument("--main-venv", type=Path, default=ROOT / ".venv")
    parser.add_argument("--airflow-venv", type=Path, default=ROOT / ".airflow-venv")
    args = parser.parse_args(argv)

    advisories = tomllib.loads(ADVISORIES.read_text())["advisory"]
    pins = {
        "main": {**read_pins(args.main_lock), **tooling_of(args.main_venv)},
        "airflow": {**read_pins(args.airflow_lock), **tooling_of(args.airflow_venv)},
    }
    findings = audit(pins, advisories)
    for f in findings:
        verdict = "accepted" if f.accepted else "VULNERABLE"
        where = f"{verdict:<10} {f.environment:<8} {f.package} {f.version} < {f.fixed}"
        print(f"{where}: {f.advisory} ({f.summary})")
    checked = sum(len(p) for p in pins.values())
    open_findings = [f for f in findings if not f.accepted]
    print(
        f"audit: {len(advisories)} advisories against {checked} pinned packages: "
        f"{len(open_findings)} open, {len(findings) - len(open_findings)} accepted (see {ADVISORIES.name})"
    )
    return 1 if open_findings else 0


if __name__ == "__main__":
    sys.exit(main())
