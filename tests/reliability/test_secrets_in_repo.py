"""No secret is committed: the tracked files hold no keys, tokens or private keys; deployment
files (Kubernetes, Airflow, spark-submit) reference secrets and never carry their values; the
local secrets file is ignored by git. (Run output is scanned in test_pipeline.py.)"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.small_conf import REPO

SECRET_VALUE = [
    re.compile(r"-----BEGIN (?:RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),  # an AWS access key id
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36}\b"),  # a GitHub token
    re.compile(r"\bxox[baprs]-[A-Za-z0-9-]{10,}\b"),  # a Slack token
    # pii_hmac_key / password / token given a literal value (not a reference or a placeholder)
    re.compile(
        r"""(?ix)\b(pii_hmac_key|password|passwd|secret_?key|api_?key|token)\b\s*[:=]\s*
        ["']?(?![{$<]|none\b|null\b|os\.environ|secret)[A-Za-z0-9+/_\-]{12,}"""
    ),
]
# Made-up keys the tests run with; a real key is never in the repository.
TEST_KEYS = re.compile(r"test|sentinel|storage|cluster|airflow|cli", re.I)


def tracked_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: the tracked files are unknown")
    return [REPO / name for name in listed.stdout.decode().split("\0") if name]


def test_no_tracked_file_holds_a_secret_value():
    found = []
    for path in tracked_files():
        if path.suffix in (".png", ".gz", ".whl") or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if any(p.search(line) for p in SECRET_VALUE) and not TEST_KEYS.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}: {line.strip()[:80]}")
    assert not found, "secret-looking values in tracked files:\n" + "\n".join(found)


def test_the_scan_finds_what_it_looks_for():
    # Split, so that this file does not hold what the scan of the repository looks for.
    leaks = [
        "pii_hmac_key" + ": 3f9a1c0e5d7b2a4c6e8f0a1b",
        "pass" + "word = 'hunter2hunter2hunter2'",
        "-----BEGIN RSA " + "PRIVATE KEY-----",
        "AKIA" + "ABCDEFGHIJKLMNOP",
    ]
    fine = ["pii_hmac_key: ${PII_KEY}", "password: null", "token = os.environ['TOKEN']"]
    assert all(any(p.search(line) for p in SECRET_VALUE) for line in leaks)
    assert not any(any(p.search(line) for p in SECRET_VALUE) for line in fine)


def test_kubernetes_takes_every_secret_from_a_secret_reference():
    documents = list(yaml.safe_load_all((REPO / "deploy" / "k8s" / "sparkapplication.yaml").read_text()))
    variables = [
        variable
        for document in documents
        for role in ("driver", "executor")
        for variable in (document["spec"].get(role, {}).get("env") or [])
    ]
    secret_variables = [v for v in variables if v["name"].startswith("DEEPSPARK_SECRET_")]
    assert secret_variables, "the application should get its PII key from a Secret"
    for variable in secret_variables:
        assert "value" not in variable and "secretKeyRef" in variable["valueFrom"], variable


def test_airflow_and_submit_scripts_pass_secrets_through_the_environment_only():
    dag = (REPO / "deploy" / "airflow" / "dags" / "deepspark_daily.py").read_text()
    submit = (REPO / "deploy" / "submit.sh").read_text()
    for text in (dag, submit):
        assert not re.search(r"DEEPSPARK_SECRET_\w+\s*[:=]", text)
    assert "DEEPSPARK_SECRET_PII_HMAC_KEY" in dag  # the DAG says where the key comes from


def test_the_local_secrets_file_is_ignored_by_git():
    tracked_files()  # skips outside a checkout
    ignored = subprocess.run(["git", "check-ignore", "-q", "conf/local/secrets.yaml"], cwd=REPO, check=False)
    assert ignored.returncode == 0
