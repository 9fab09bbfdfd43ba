"""Stage ingest: raw landing files -> bronze Delta tables, one per configured source.

Input: files under ``<data_root>/landing/<source path>``. Output: ``bronze.<source>`` and
``meta.ingested_files`` (one row per file taken in: the ledger that makes ingest idempotent).
Parameters: ``ingest.sources`` (format, path, the declared columns or DDL, reader options).

Bronze keeps every record. A record Spark cannot parse, or one from a file whose header (CSV)
or keys (JSON) drift from the declared contract, is kept with its raw text in ``_raw_record``
and the problem in ``_ingest_issue`` / ``_ingest_rule``; the clean stage quarantines it.
Values whose bytes are not valid UTF-8 are decoded with the source's fallback charset, value by
value, and the row names those columns in ``_redecoded`` (counted per source and column in the
result). Each row gets its source file, batch id (the run id), ingest time and a content hash.
A file already in the ledger is never read again, and a new file whose bytes equal a file
already ingested (the same export landed again under another name) is a replay: recorded in the
ledger and skipped, unless ``ingest.replays: ingest``.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial, reduce
from urllib.parse import unquote, urlsplit

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from deepspark.bronze import MALFORMED, METADATA, PROBLEMS, SCHEMA_DRIFT
from deepspark.config import SourceConfig
from deepspark.errors import describe
from deepspark.run import Run, StageFailed, StageResult, skipped
from deepspark.tables import Txn, hadoop_uri

log = logging.getLogger(__name__)

LEDGER = "meta.ingested_files"
CORRUPT = "_corrupt_record"
BOM = "\ufeff"
REDECODED = "_redecoded"
WHOLE_RECORD = "(record)"  # a JSON line is decoded whole, so its re-decoding names no one column
BATCH_ATTEMPTS = 5  # listings of one source when concurrent runs keep appending to its table
MULTILINE_HINT_SHARE = 0.01  # a CSV file with more malformed rows than this suggests multiLine


class UnreadableFileError(OSError):
    """A landed file that cannot be read at all (damaged compression); it must be replaced."""


@dataclass(frozen=True)
class LandedFile:
    path: str  # a fully qualified URI, as Spark's input_file_name() reports it (%20 for a space)
    size: int
    modified_ms: int
    location: str  # the same file as a Hadoop path string, which Spark's readers take


def list_landed_files(spark: SparkSession, folder: str) -> list[LandedFile]:
    """Every data file under ``folder`` (recursively), skipping hidden and ``_``-prefixed names
    as Spark does. Works on any Hadoop file system; an absent folder lists nothing."""
    jvm = spark.sparkContext._jvm
    root = jvm.org.apache.hadoop.fs.Path(folder)
    fs = root.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not fs.exists(root):
        return []
    found, files = [], fs.listFiles(root, True)
    while files.hasNext():
        status = files.next()
        relative = str(status.getPath().toUri().getPath())[len(str(root.toUri().getPath())) :]
        if any(part.startswith(("_", ".")) for part in relative.split("/") if part):
            continue
        path = status.getPath()
        found.append(LandedFile(str(path.toUri()), status.getLen(), status.getModificationTime(), str(path)))
    return sorted(found, key=lambda f: f.path)


def codec_of(spark: SparkSession, path: str):
    """The Hadoop codec Spark's readers decompress the file with (by its extension: .gz, .bz2,
    ...), or None."""
    jvm = spark.sparkContext._jvm
    codecs = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(
        spark.sparkContext._jsc.hadoopConfiguration()
    )
    return codecs.getCodec(jvm.org.apache.hadoop.fs.Path(path))


def read_header_line(spark: SparkSession, path: str, comment: str | None = None) -> str | None:
    """The line Spark's CSV reader takes for a header: the first that is not blank and, with the
    ``comment`` option, does not start with it (``# Data source: ...`` above the header); as
    Latin-1 text (bytes kept 1:1), or None when the file has no such line. Compressed files
    (``.gz``, ``.bz2``, ...) are decompressed by their codec, as Spark does."""
    jvm = spark.sparkContext._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    stream = hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).open(hpath)
    codec = codec_of(spark, path)
    if codec is not None:
        stream = codec.createInputStream(stream)
    reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(stream, "ISO-8859-1"))
    try:
        while (line := reader.readLine()) is not None:
            if line.strip() and not (comment and line.startswith(comment)):
                return line
        return None
    except Exception as error:  # py4j's wrapper of an IOException (e.g. a truncated .gz)
        raise UnreadableFileError(f"ingest: cannot read {path}: {describe(error)}") from error
    finally:
        reader.close()


def parse_header(line: str, separator: str = ",", fallback: str = "ISO-8859-1") -> list[str]:
    """Column names from a CSV header line read as Latin-1 (bytes kept 1:1), decoded as its
    values are (UTF-8 when valid, else ``fallback``): BOM, quotes and spaces removed."""
    raw = line.encode("latin-1").removeprefix(BOM.encode("utf-8"))
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError:
        line = raw.decode(fallback, errors="replace")  # a name it cannot decode is schema drift
    return [name.strip().strip('"').strip() for name in line.split(separator)]


def decode_bytes(raw: Column, fallback: str) -> Column:
    """A string holding undecoded bytes, as UTF-8 text when they are valid UTF-8 and as
    ``fallback``-decoded text otherwise: each value decides for itself."""
    return F.when(F.is_valid_utf8(raw), raw).otherwise(F.decode(raw.cast("binary"), fallback))


def repair_encoding(value: Column, fallback: str) -> Column:
    """A string read as Latin-1 (bytes kept 1:1), decoded as :func:`decode_bytes` does."""
    return decode_bytes(_latin1_bytes(value), fallback)


def is_redecoded(value: Column) -> Column:
    """True where a Latin-1-read string's bytes are not valid UTF-8 (:func:`repair_encoding` uses
    the fallback charset for it)."""
    return ~F.is_valid_utf8(_latin1_bytes(value))


def redecoded_columns(flags: dict[str, Column]) -> Column:
    """The names of the columns whose flag is true, as an array (empty when none)."""
    none = F.array().cast("array<string>")
    # Arrays joined, not a filter lambda over one array: a lambda keeps its projection out of
    # code generation (2 of the 10M bench's 7 JSON files: 6.9 s -> 6.1 s to parse).
    return F.concat(
        none, *[F.when(flag, F.array(F.lit(name))).otherwise(none) for name, flag in flags.items()]
    )


def read_csv_files(
    spark: SparkSession, files: list[str], header: list[str], source: SourceConfig, utf8: bool = False
) -> DataFrame:
    """Read files sharing one header; malformed lines keep their raw text in ``_corrupt_record``.
    ``utf8``: every byte of the files is known to be valid UTF-8, so they are read as UTF-8 and
    no value needs the fallback charset (the same text, without the check per value)."""
    schema = ", ".join(f"`{c}` string" for c in header) + f", `{CORRUPT}` string"
    options = {"header": "true", **source.options}
    encoding = "UTF-8" if utf8 else "ISO-8859-1"
    options.update(mode="PERMISSIVE", columnNameOfCorruptRecord=CORRUPT, encoding=encoding)
    df = spark.read.schema(schema).options(**options).csv(files)
    if utf8:
        return df.withColumn(REDECODED, redecoded_columns({}))
    columns = [c for c in df.columns if c != CORRUPT]
    return df.select(
        *[repair_encoding(F.col(f"`{c}`"), source.fallback_encoding).alias(c) for c in df.columns],
        redecoded_columns({c: is_redecoded(F.col(f"`{c}`")) for c in columns}).alias(REDECODED),
    )


def csv_to_bronze(
    spark: SparkSession, files: list[str], source: SourceConfig, utf8: frozenset[str] = frozenset()
) -> DataFrame | None:
    """Group the files by header; files whose header is not the declared one are schema drift.
    ``utf8``: the files known to be valid UTF-8 throughout (see :func:`read_csv_files`)."""
    declared = source.columns
    separator = source.options.get("sep", source.options.get("delimiter", ","))
    has_header = source.options.get("header", "true").lower() == "true"
    comment = source.options.get("comment") or None  # Spark's default: no comment lines
    groups: dict[tuple[tuple[str, ...], bool], list[str]] = {}
    for path in files:
        first = read_header_line(spark, path, comment)
        if first is None:
            continue  # an empty file (or one of comments alone) holds no records
        header = (
            tuple(parse_header(first, separator, source.fallback_encoding)) if has_header else tuple(declared)
        )
        groups.setdefault((header, path in utf8), []).append(path)

    frames = []
    for (header, is_utf8), paths in groups.items():
        if list(header) == declared:
            df = read_csv_files(spark, paths, declared, source, is_utf8)
            frames.append(
                df.select(
                    *[F.col(f"`{c}`") for c in declared],
                    F.col(CORRUPT).alias("_raw_record"),
                    F.when(F.col(CORRUPT).isNotNull(), F.lit(MALFORMED)).alias("_ingest_issue"),
                    F.when(
                        F.col(CORRUPT).isNotNull(), F.lit("csv: wrong number of fields or broken quoting")
                    ).alias("_ingest_rule"),
                    F.input_file_name().alias("_source_file"),
                    REDECODED,
                )
            )
            continue
        names = _unique_names(header)
        missing = [c for c in declared if c not in names]
        extra = [c for c in names if c not in declared]
        rule = f"csv header {list(header)} is not the declared {declared}: missing {missing}, extra {extra}"
        if not comment and header[0].startswith("#"):
            rule += "; a first line starting with '#' is a comment: set options: {comment: '#'}"
        df = read_csv_files(spark, paths, names, source, is_utf8)
        raw = F.coalesce(F.col(CORRUPT), F.to_json(F.struct(*[F.col(f"`{c}`") for c in names])))
        frames.append(
            df.select(
                *[F.lit(None).cast("string").alias(c) for c in declared],
                raw.alias("_raw_record"),
                F.lit(SCHEMA_DRIFT).alias("_ingest_issue"),
                F.lit(rule).alias("_ingest_rule"),
                F.input_file_name().alias("_source_file"),
                REDECODED,
            )
        )
    return reduce(DataFrame.unionByName, frames) if frames else None


def json_to_bronze(spark: SparkSession, files: list[str], source: SourceConfig) -> DataFrame:
    """Parse JSON lines against the declared DDL; unparseable lines, values of the wrong type
    and records with undeclared keys keep their raw line. Spark's text source keeps each line's
    bytes undecoded: a line that is not valid UTF-8 is decoded with the fallback charset."""
    lines = spark.read.text(files).filter(F.trim("value") != "")
    line = decode_bytes(F.col("value"), source.fallback_encoding)
    redecoded = ~F.is_valid_utf8(F.col("value"))
    schema = f"{source.ddl}, `{CORRUPT}` string"
    parsed = lines.select(
        redecoded_columns({WHOLE_RECORD: redecoded}).alias(REDECODED),
        line.alias("_line"),
        F.from_json(line, schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT}).alias(
            "_parsed"
        ),
        F.input_file_name().alias("_source_file"),
    )
    declared = [f for f in parsed.schema["_parsed"].dataType.fieldNames() if f != CORRUPT]
    # The keys are a column of their own, read by the next step: Spark parses them once, not
    # once for every column that asks.
    keyed = parsed.withColumn("_keys", F.json_object_keys("_line"))
    keys = F.col("_keys")
    # As many keys as declared ones found: no key repeats and none is undeclared. Only other
    # lines need the costlier checks, which allocate per row.
    found = reduce(Column.__add__, [F.array_contains(keys, c).cast("int") for c in declared])
    plain = F.size(keys) == found
    extra = F.array_except(keys, F.array(*[F.lit(c) for c in declared]))
    broken = F.col(f"_parsed.{CORRUPT}").isNotNull() | keys.isNull()
    # {"id": 1, "id": 2}: parsers disagree on which value wins, so neither may.
    repeated = ~plain & (F.size(keys) != F.size(F.array_distinct(keys)))
    drifted = ~plain & (F.size(extra) > 0)
    checked = keyed.withColumns(
        {
            "_issue": F.when(broken | repeated, F.lit(MALFORMED)).when(drifted, F.lit(SCHEMA_DRIFT)),
            "_rule": F.when(broken, F.lit("json: not a record of the declared ddl (syntax or value types)"))
            .when(repeated, F.lit("json: a key appears more than once"))
            .when(drifted, F.concat(F.lit("json keys not in the declared ddl: "), F.array_join(extra, ", "))),
        }
    )
    kept = F.col("_issue").isNull()
    return checked.select(
        *[F.when(kept, F.col(f"_parsed.`{c}`")).alias(c) for c in declared],
        F.when(~kept, F.col("_line")).alias("_raw_record"),
        F.col("_issue").alias("_ingest_issue"),
        F.col("_rule").alias("_ingest_rule"),
        "_source_file",
        REDECODED,
    )


def files_to_bronze(
    spark: SparkSession, files: list[str], source: SourceConfig, utf8: frozenset[str] = frozenset()
) -> DataFrame | None:
    """Read one source's new files into bronze's shape (before metadata). ``utf8``: the files
    known to be valid UTF-8 throughout (a CSV source reads them without a check per value)."""
    if source.format == "csv":
        return csv_to_bronze(spark, files, source, utf8)
    if source.format == "json":
        return json_to_bronze(spark, files, source)
    if source.format == "image":
        # Spark's image source: an undecodable file becomes a row with height -1, kept as malformed.
        df = spark.read.format("image").options(**source.options).load(files)
        bad = F.col("image.height") < 0
        return df.select(
            "image",
            F.when(bad, F.col("image.origin")).alias("_raw_record"),
            F.when(bad, F.lit(MALFORMED)).alias("_ingest_issue"),
            F.when(bad, F.lit("image: not a decodable image")).alias("_ingest_rule"),
            F.col("image.origin").alias("_source_file"),
            redecoded_columns({}).alias(REDECODED),
        )
    if source.format == "text":
        # One row per file unless wholetext: false asks for one row per line.
        whole = source.options.get("wholetext", "true").lower() == "true"
        df = spark.read.options(**source.options).text(files, wholetext=whole)
    else:
        df = spark.read.options(**source.options).format(source.format).load(files)
    return df.select(
        "*",
        *[F.lit(None).cast(StringType()).alias(c) for c in PROBLEMS],
        F.input_file_name().alias("_source_file"),
        redecoded_columns({}).alias(REDECODED),
    )


def add_ingest_metadata(df: DataFrame, batch_id: str) -> DataFrame:
    """Tag rows with their batch and ingest time, and a hash of their content."""
    content = [c for c in df.columns if c not in METADATA and c not in ("_ingest_issue", "_ingest_rule")]
    return df.select(
        *[F.col(f"`{c}`") for c in df.columns if c not in METADATA],
        "_source_file",
        F.lit(batch_id).alias("_batch_id"),
        F.current_timestamp().alias("_ingested_at"),
        F.sha2(F.to_json(F.struct(*[F.col(f"`{c}`") for c in content])), 256).alias("_row_hash"),
        REDECODED,
    )


def new_files(
    landed: list[LandedFile], ledger: DataFrame | None, bronze: DataFrame | None, source: str
) -> list[LandedFile]:
    """The landed files not yet ingested for ``source``. The ledger is written after bronze, so
    bronze itself is asked too: a run stopped between the two commits re-reads nothing."""
    seen: set[str] = set()
    if ledger is not None:
        seen |= {r.path for r in ledger.filter(F.col("source") == source).select("path").collect()}
    candidates = [f.path for f in landed if f.path not in seen]
    if bronze is not None and candidates:
        in_bronze = bronze.filter(F.col("_source_file").isin(candidates)).select("_source_file").distinct()
        seen |= {r[0] for r in in_bronze.collect()}
    return [f for f in landed if f.path not in seen]


@dataclass(frozen=True)
class Contents:
    """What one read of the new files' bytes tells: ``sha256`` by path, and the ``utf8`` files
    (by location): uncompressed ones whose every byte is valid UTF-8."""

    sha256: dict[str, str]
    utf8: frozenset[str]


def read_contents(spark: SparkSession, files: list[LandedFile], check_utf8: bool = True) -> Contents:
    """Each file's SHA-256 and (``check_utf8``) whether its bytes are valid UTF-8. Files on the
    local file system are streamed by this process (:func:`local_facts`); others are read on
    the executors (:func:`executor_facts`). At 10.1M rows (1.3 GB in 12 local files) the first
    took 0.5 s, the second 8 to 11 s."""
    if not files:
        return Contents({}, frozenset())
    local = all(urlsplit(f.path).scheme == "file" for f in files)
    found = local_facts(files, check_utf8) if local else executor_facts(spark, files, check_utf8)
    return Contents(
        sha256={path: sha for path, (sha, _) in found.items()},
        utf8=frozenset(f.location for f in files if found[f.path][1] and codec_of(spark, f.location) is None),
    )


def local_facts(files: list[LandedFile], utf8: bool) -> dict[str, tuple[str | None, bool]]:
    """Path -> (SHA-256, valid UTF-8) of local files, streamed a few at a time (hashlib lets go
    of the GIL while it hashes)."""
    with ThreadPoolExecutor(min(4, len(files))) as pool:
        facts = pool.map(partial(_file_facts, utf8=utf8), files)
        return {f.path: fact for f, fact in zip(files, facts, strict=True)}


def executor_facts(
    spark: SparkSession, files: list[LandedFile], utf8: bool
) -> dict[str, tuple[str | None, bool]]:
    """Path -> (SHA-256, valid UTF-8), computed on the executors: Spark's binaryFile source, so a
    file must be under its 2 GiB limit."""
    frame = spark.read.format("binaryFile").load([f.location for f in files])
    valid = F.is_valid_utf8(F.col("content").cast("string")) if utf8 else F.lit(False)
    rows = frame.select("path", F.sha2("content", 256).alias("sha"), valid.alias("utf8")).collect()
    by_path = {r.path: (r.sha, r.utf8) for r in rows}
    empty = (hashlib.sha256(b"").hexdigest(), utf8)  # the source yields no row for an empty file
    gone = (None, False)
    return {
        f.path: by_path.get(f.path, by_path.get(f.location, empty if f.size == 0 else gone)) for f in files
    }


def _file_facts(file: LandedFile, utf8: bool) -> tuple[str | None, bool]:
    """(SHA-256, valid UTF-8) of a local file's bytes, streamed; (None, False) when it is gone."""
    digest, decoder = hashlib.sha256(), codecs.getincrementaldecoder("utf-8")() if utf8 else None
    try:
        with open(unquote(urlsplit(file.path).path), "rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
                decoder = _still_utf8(decoder, chunk)
    except FileNotFoundError:
        return None, False
    decoder = _still_utf8(decoder, b"", final=True)  # a file cut inside a character
    return digest.hexdigest(), decoder is not None


def _still_utf8(decoder, chunk: bytes, final: bool = False):
    """The decoder after ``chunk``, or None once the bytes are not UTF-8 (only the hash goes on)."""
    if decoder is None:
        return None
    try:
        decoder.decode(chunk, final=final)
        return decoder
    except UnicodeDecodeError:
        return None


def find_replays(
    fresh: list[LandedFile], hashes: dict[str, str], ledger: DataFrame | None, source: str
) -> dict[str, str]:
    """New file -> the file it repeats, byte for byte: one already ingested for ``source``, or
    an earlier one of the same batch. An empty file repeats nothing: it holds no rows."""
    known: dict[str, str] = {}
    if ledger is not None and "content_sha256" in ledger.columns:
        rows = (
            ledger.filter((F.col("source") == source) & F.col("content_sha256").isin(list(hashes.values())))
            .select("content_sha256", "path")
            .collect()
        )
        known = {r.content_sha256: r.path for r in rows}
    replays = {}
    for landed in fresh:
        digest = hashes.get(landed.path) if landed.size else None
        if digest in known:
            replays[landed.path] = known[digest]
        elif digest is not None:
            known[digest] = landed.path
    return replays


def count_committed(table: DataFrame, paths: list[str]) -> tuple[dict[str, int], dict[str, dict], dict]:
    """From the committed rows of ``paths``: rows per file, ingest issues per file (with
    ``open_quote``: malformed rows whose raw text has an unbalanced double quote), and
    re-decoded values per column."""
    mine = table.filter(F.col("_source_file").isin(paths))
    quotes = F.size(F.split(F.coalesce(F.col("_raw_record"), F.lit("")), '"')) - 1
    open_quote = (F.col("_ingest_issue") == MALFORMED) & (quotes % 2 == 1)
    # One job: the re-decoded lists are few distinct values, so they group beside the file.
    lists = [REDECODED] if REDECODED in table.columns else []
    grouped = mine.groupBy("_source_file", "_ingest_issue", *lists).agg(
        F.count(F.lit(1)).alias("count"), F.count(F.when(open_quote, True)).alias("open_quote")
    )
    per_file: Counter[str] = Counter()
    issues: dict[str, Counter[str]] = {}
    redecoded: Counter[str] = Counter()
    for row in grouped.collect():
        per_file[row["_source_file"]] += row["count"]
        if row["_ingest_issue"]:
            found = issues.setdefault(row["_source_file"], Counter())
            found[row["_ingest_issue"]] += row["count"]
            if row["open_quote"]:
                found["open_quote"] += row["open_quote"]
        for column in row.asDict().get(REDECODED) or []:
            redecoded[column] += row["count"]
    return dict(per_file), {path: dict(found) for path, found in issues.items()}, dict(redecoded)


def multiline_hint(name: str, source: SourceConfig, per_file: dict[str, int], issues: dict) -> str | None:
    """A warning when a CSV file read without multiLine has many malformed rows with an open
    quote: the pieces of quoted values that span lines (a cut-short row has none)."""
    if source.format != "csv" or source.options.get("multiLine", "false").lower() == "true":
        return None
    for path, rows in per_file.items():
        pieces = issues.get(path, {}).get("open_quote", 0)
        if rows and pieces / rows > MULTILINE_HINT_SHARE:
            return (
                f"ingest {name}: {pieces} of {rows} rows of {path.rsplit('/', 1)[-1]} are malformed with an "
                f"open quote; if quoted values span lines, set ingest.sources.{name}.options.multiLine: true"
            )
    return None


def ingest(run: Run) -> StageResult:
    sources = run.config.ingest.sources
    if not sources:
        return skipped("no ingest.sources in conf")
    result = StageResult()
    ledger = run.tables.read(LEDGER) if run.tables.exists(LEDGER) else None
    ledger_rows = []
    for name, source in run.track("ingest (sources)", sources.items()):
        table = f"bronze.{name}"
        folder = hadoop_uri(run.config.landing_root / source.path)
        landed = list_landed_files(run.spark, folder)
        for _ in range(BATCH_ATTEMPTS):
            # The batch is the bronze version it was listed against, plus one: Delta's application
            # transaction, so of two runs ingesting the same files only one appends them; the
            # other is told (skipped) and lists again against the winner's version.
            batch = run.tables.version(table) + 1 if run.tables.exists(table) else 0
            bronze_now = run.tables.read(table, version=batch - 1) if batch else None
            fresh = new_files(landed, ledger, bronze_now, name)
            # Only a CSV source reads valid UTF-8 files differently (csv_to_bronze).
            contents = read_contents(run.spark, fresh, check_utf8=source.format == "csv")
            hashes = contents.sha256
            replays = find_replays(fresh, hashes, ledger, name) if run.config.ingest.replays == "skip" else {}
            to_read = [f for f in fresh if f.path not in replays]
            locations = [f.location for f in to_read]
            frame = files_to_bronze(run.spark, locations, source, contents.utf8) if to_read else None
            if frame is None:
                break
            written = run.tables.write(
                add_ingest_metadata(frame, run.run_id),
                table,
                evolve_schema=True,
                txn=Txn(f"deepspark.ingest.{name}", batch),
            )
            if not written.skipped:
                break
            log.info("ingest %s: another run appended batch %d first; listing again", name, batch)
            ledger = run.tables.read(LEDGER) if run.tables.exists(LEDGER) else None
        else:
            raise StageFailed(
                f"ingest {name}: {BATCH_ATTEMPTS} concurrent runs appended to {table} while this one "
                "listed its files; run ingest again"
            )
        metrics = {
            "files_landed": len(landed),
            "files_new": len(to_read),
            "files_replayed": len(replays),
            "rows": 0,
            "issues": {},
            "redecoded": {},
        }
        result.metrics[name] = metrics
        if not landed:
            result.status = "warning"
            result.notes.append(f"{name}: no files under {folder}; bronze.{name} gets no rows")
        for path, original in replays.items():
            result.notes.append(f"{name}: {path} repeats {original} byte for byte (replayed); skipped")
        rows_per_file: dict[str, int] = {}
        if frame is not None:
            # Parsed once, as it is written; the counts come from the committed files.
            committed = run.tables.read(table, version=written.version)
            rows_per_file, issues, metrics["redecoded"] = count_committed(
                committed, [f.path for f in to_read]
            )
            for per_file in issues.values():
                for issue, count in per_file.items():
                    if issue != "open_quote":  # a kind of malformed, counted there
                        metrics["issues"][issue] = metrics["issues"].get(issue, 0) + count
            hint = multiline_hint(name, source, rows_per_file, issues)
            if hint:
                log.warning(hint)
                result.status = "warning"
                result.notes.append(hint)
            metrics["rows"] = written.rows_written
            result.rows_in += written.rows_written
            result.rows_out += written.rows_written
            result.tables[table] = written.version
        result.details.append(source_line(name, metrics, source.fallback_encoding))
        ledger_rows += [
            (name, f.path, f.size, f.modified_ms, rows_per_file.get(f.path, 0), run.run_id)
            + (hashes.get(f.path), replays.get(f.path))
            for f in fresh
        ]
    if ledger_rows:
        entries = run.spark.createDataFrame(
            ledger_rows,
            "source string, path string, bytes long, modified_ms long, rows long, batch_id string, "
            "content_sha256 string, replay_of string",
        )
        result.tables[LEDGER] = run.tables.write(entries, LEDGER, evolve_schema=True).version
    return result


def source_line(name: str, metrics: dict, fallback: str) -> str:
    """``orders: 3 new file(s), 9000 rows (malformed 12); not UTF-8, decoded as ISO-8859-1: text 4``."""
    parts = [f"{metrics['files_new']} new file(s)"]
    if metrics["files_replayed"]:
        parts.append(f"{metrics['files_replayed']} replayed (skipped)")
    if not metrics["files_landed"]:
        parts = ["no files landed"]
    line = f"{name}: {', '.join(parts)}, {metrics['rows']} rows"
    if metrics["issues"]:
        line += " (" + ", ".join(f"{k} {v}" for k, v in sorted(metrics["issues"].items())) + ")"
    if metrics["redecoded"]:
        shown = ", ".join(f"{c} {n}" for c, n in sorted(metrics["redecoded"].items()))
        line += f"; not UTF-8, decoded as {fallback}: {shown}"
    return line


def _unique_names(header: tuple[str, ...]) -> list[str]:
    names: list[str] = []
    for i, name in enumerate(header):
        name = name or f"_c{i}"
        names.append(name if name not in names else f"{name}_{i}")
    return names


def _latin1_bytes(value: Column) -> Column:
    return F.encode(value, "ISO-8859-1").cast("string")
