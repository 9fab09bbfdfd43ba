"""The Delta layer's types, shared by :class:`~deepspark.tables.Tables` and both engines: what a
write returns, the write modes, the engine protocol and how paths are written for Spark."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import unquote, urlparse

from pyspark.sql import DataFrame

WriteMode = Literal["append", "overwrite"]

# Set on every table either engine creates, so the other can always open it: delta-rs's
# offline engine reads data files directly and cannot apply deletion vectors.
TABLE_PROPERTIES = {"delta.enableDeletionVectors": "false"}
COMMIT_ATTEMPTS = 5  # for blind appends that lose the race to the log
DUPLICATE_KEYS = "merge source has several rows for key"


@dataclass(frozen=True)
class WriteResult:
    """One commit: the table, the version it made, and what it added and removed."""

    table: str
    version: int
    rows_written: int
    files_added: int = 0
    files_removed: int = 0
    metrics: dict[str, int] = field(default_factory=dict)
    skipped: bool = False
    """True when the write carried a :class:`Txn` the table had already committed: nothing new."""


@dataclass(frozen=True)
class Txn:
    """Delta's application transaction (``txnAppId``/``txnVersion``): a write carrying one is
    committed only if the table holds no version ``>= version`` for ``app_id``, atomically with
    that record, so a retried or concurrent writer never appends the same batch twice. An
    application's versions only grow."""

    app_id: str
    version: int


class Engine(Protocol):
    """What :class:`~deepspark.tables.Tables` needs of a Delta engine (``spark`` or ``rs``)."""

    name: str

    def exists(self, path: str) -> bool: ...
    def read(self, path: str, version: int | None, timestamp: datetime | None) -> DataFrame: ...
    def files(self, path: str, version: int | None) -> list[str]: ...
    def write(
        self,
        df: DataFrame,
        path: str,
        mode: WriteMode,
        partition_by: list[str] | None,
        evolve_schema: bool,
        txn: Txn | None,
        replace_schema: bool = False,
    ) -> WriteResult: ...
    def merge(self, df: DataFrame, path: str, keys: list[str]) -> WriteResult: ...
    def version(self, path: str) -> int: ...
    def history(self, path: str) -> list[dict]: ...
    def txn_version(self, path: str, app_id: str) -> int | None: ...
    def compact(self, path: str, zorder: list[str]) -> WriteResult: ...
    def vacuum(self, path: str, retention_hours: float) -> list[str]: ...


def hadoop_uri(path: str | Path) -> str:
    """A path as Spark and Hadoop take it: URIs unchanged, local paths as absolute ``file://``
    paths written as-is (no percent-encoding: ``Path.as_uri`` would encode ``=``)."""
    text = str(path)
    return text if "://" in text else "file://" + str(Path(text).resolve())


def relative_to_table(uri: str, table_path: str) -> str:
    """A data file's URI (``file:`` or a plain path) as the path relative to its table's folder,
    the form Delta's log writes; ValueError if it lies outside the table."""
    local = unquote(urlparse(uri).path) if uri.startswith("file:") else uri
    return Path(local).resolve().relative_to(Path(table_path).resolve()).as_posix()
