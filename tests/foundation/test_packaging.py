"""deploy/package.sh: the wheel and the conf archive a cluster gets (the packed environment,
`--env`, is measured in the closing note: it copies the whole 3.5 GB stack)."""

from __future__ import annotations

import os
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [str(REPO / "deploy" / "package.sh")],
        env={**os.environ, "DIST": str(folder)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


def test_the_wheel_holds_every_module_its_templates_and_the_cli_entry_point(dist):
    [wheel] = dist.glob("deepspark-*-py3-none-any.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    package = REPO / "lib" / "deepspark"
    modules = {str(p.relative_to(REPO / "lib")) for p in [*package.rglob("*.py"), *package.rglob("*.j2")]}
    assert any(name.endswith("report.md.j2") for name in modules)
    assert modules <= names, sorted(modules - names)
    [entry_points] = [n for n in names if n.endswith("entry_points.txt")]
    assert "deepspark = deepspark.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    [metadata] = [n for n in names if n.endswith("METADATA")]
    assert "Requires-Dist: pyspark==4.0.5" in zipfile.ZipFile(wheel).read(metadata).decode()


def test_the_conf_archive_holds_base_and_cluster_and_never_secrets(dist):
    with tarfile.open(dist / "deepspark-conf.tar.gz") as archive:
        names = archive.getnames()
    expected = {f"base/{p.name}" for p in (REPO / "conf" / "base").glob("*.yaml")}
    expected |= {f"cluster/{p.name}" for p in (REPO / "conf" / "cluster").glob("*.yaml")}
    assert expected <= set(names)
    assert not [n for n in names if "secret" in n or n.startswith("local")]


def test_the_delta_spark_jars_come_beside_the_wheel(dist):
    shipped = sorted(p.name for p in (dist / "jars").glob("*.jar"))
    assert shipped == ["delta-spark_2.13-4.0.1.jar", "delta-storage-4.0.1.jar"]
