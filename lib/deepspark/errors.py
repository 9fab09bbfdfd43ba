"""Failures told in one line a user can act on.

Spark's errors reach Python wrapped by py4j, with JVM stack traces hundreds of lines long; the
line that matters (the error class, the file involved, the operating system's reason) is buried
in them. ``describe`` keeps that line and the deepest cause, for the CLI and the run summary.
"""

from __future__ import annotations

import re

SPARK_ERROR_CLASS = re.compile(r"\[[A-Z][A-Z0-9_.]+\]")
JVM_FRAME = re.compile(r"^\s+at [\w$.<>]+\(.*\)$|^\s+\.\.\. \d+ more$")
PY4J_CALL = re.compile(r"^An error occurred while calling [\w.$:]+\.?$")
PY_TRACEBACK = "Traceback (most recent call last):"
LONGEST = 600


def describe(error: BaseException) -> str:
    """The error's message without stack frames: Spark's error-class line (or the first line),
    plus the deepest ``Caused by`` when it says something the first line does not."""
    text = str(error).strip()
    if PY_TRACEBACK in text:  # a UDF's Python worker failed: its exception, not its frames
        return _shortened(f"a Python worker failed: {_python_exception(text)}")
    raw = text.splitlines()
    if not any(JVM_FRAME.match(line) for line in raw):
        if raw and SPARK_ERROR_CLASS.match(raw[0]):  # an analysis error: its line, not its plan
            return _shortened(raw[0].strip().removesuffix(";"))
        return text  # a Python error: its message is already what the user should read
    messages = _jvm_messages(raw)
    headline = next((m for m in messages if SPARK_ERROR_CLASS.search(m)), messages[0] if messages else text)
    causes = [m.removeprefix("Caused by: ") for m in messages if m.startswith("Caused by: ")]
    message = _without_java_prefix(headline.removeprefix("Caused by: "))
    if causes and _without_java_prefix(causes[-1]) not in message:
        message += f" (cause: {_without_java_prefix(causes[-1])})"
    return _shortened(message)


def _jvm_messages(lines: list[str]) -> list[str]:
    """The exceptions' messages in a JVM error's text, each on one line: the lines between stack
    frames (a stage failure's message goes on with the failed task's reason), py4j's call and
    "Driver stacktrace:" left out, each "Caused by" a message of its own."""
    messages: list[list[str]] = []
    ended = True  # the next line that says something starts a message
    for line in lines:
        text = line.strip().removeprefix(": ")
        if JVM_FRAME.match(line) or not text:
            ended = True
        elif not (PY4J_CALL.match(text) or text == "Driver stacktrace:"):
            if ended or text.startswith("Caused by: "):
                messages.append([])
            messages[-1].append(text)
            ended = False
    return [" ".join(parts) for parts in messages]


def _python_exception(text: str) -> str:
    """The exception line of the last Python traceback in ``text`` (which the JVM may wrap)."""
    lines = []
    for line in text.rsplit(PY_TRACEBACK, 1)[1].splitlines():
        if JVM_FRAME.match(line):
            break
        lines.append(line)
    raised = [line for line in lines if line.strip() and not line[0].isspace()]
    return raised[-1].strip() if raised else "no message"


def _shortened(message: str) -> str:
    return message if len(message) <= LONGEST else message[: LONGEST - 3] + "..."


def _without_java_prefix(line: str) -> str:
    """``org.apache.spark.SparkException: [X] ...`` -> ``[X] ...``; plain Java exceptions keep
    their short class name (``IOException: No space left on device``)."""
    name, colon, rest = line.partition(": ")
    if colon and re.fullmatch(r"[\w$]+(\.[\w$]+)+", name):
        short = name.rsplit(".", 1)[-1]
        return rest if SPARK_ERROR_CLASS.match(rest) else f"{short}: {rest}"
    return line
