"""Spark's wrapped errors become one line: the error class line and the deepest cause."""

from __future__ import annotations

from deepspark.errors import describe

# A real one, shortened: reading a damaged parquet file in local mode.
PY4J = """An error occurred while calling o84.count.
: org.apache.spark.SparkException: Job aborted due to stage failure: Task 1 in stage 8.0 failed 1 times
\tat org.apache.spark.scheduler.DAGScheduler.failJobAndIndependentStages(DAGScheduler.scala:2856)
\tat scala.collection.immutable.List.foreach(List.scala:334)
Caused by: org.apache.spark.SparkException: [FAILED_READ_FILE.NO_HINT] Encountered error \
while reading file file:///t/part-0.parquet.  SQLSTATE: KD001
\tat org.apache.spark.sql.errors.QueryExecutionErrors$.cannotReadFilesError(QueryExecutionErrors.scala:849)
\t... 20 more
Caused by: java.lang.RuntimeException: file:///t/part-0.parquet is not a Parquet file. \
Expected magic number at tail
\tat org.apache.parquet.hadoop.ParquetFileReader.readFooter(ParquetFileReader.java:565)
"""


def test_a_py4j_error_is_its_error_class_line_and_its_root_cause():
    text = describe(RuntimeError(PY4J))
    assert text == (
        "[FAILED_READ_FILE.NO_HINT] Encountered error while reading file file:///t/part-0.parquet.  "
        "SQLSTATE: KD001 (cause: RuntimeException: file:///t/part-0.parquet is not a Parquet file. "
        "Expected magic number at tail)"
    )


def test_an_io_error_keeps_the_operating_systems_reason():
    text = "An error occurred while calling o9.parquet.\n: java.io.IOException: No space left on device\n"
    text += "\tat org.apache.hadoop.fs.RawLocalFileSystem.write(RawLocalFileSystem.java:1)"
    assert describe(RuntimeError(text)) == "IOException: No space left on device"


def test_a_python_error_is_left_as_it_is():
    message = "critical expectations failed:\nexpect_x on silver.orders: observed 3"
    assert describe(ValueError(message)) == message


# A real one, shortened: a pandas UDF whose function the worker could not unpickle.
WORKER = """An exception was thrown from the Python worker. Please see the stack trace below.
Traceback (most recent call last):
  File "/venv/pyspark.zip/pyspark/worker.py", line 2028, in main
    func, profiler, deserializer, serializer = read_udfs(pickleSer, infile, eval_type)
                                               ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/venv/pyspark.zip/pyspark/serializers.py", line 500, in loads
    return cloudpickle.loads(obj, encoding=encoding)
AttributeError: Can't get attribute 'ImageConverter' on <module 'deepspark.stages.train.data'>
"""


def test_a_python_worker_error_is_its_exception_line():
    expected = (
        "a Python worker failed: AttributeError: Can't get attribute 'ImageConverter' on "
        "<module 'deepspark.stages.train.data'>"
    )
    assert describe(RuntimeError(WORKER)) == expected
    # the same, wrapped by the JVM (a task failure): still the worker's line, no frames
    wrapped = (
        "An error occurred while calling o12.save.\n: org.apache.spark.SparkException: Job aborted\n"
        "\tat org.apache.spark.scheduler.DAGScheduler.failJob(DAGScheduler.scala:1)\n"
        "Caused by: org.apache.spark.api.python.PythonException: "
        + WORKER.split("below.\n", 1)[1]
        + "\tat org.apache.spark.api.python.BasePythonRunner.read(PythonRunner.scala:1)\n"
    )
    assert describe(RuntimeError(wrapped)) == expected


# A real one, shortened: a worker host lost while a barrier stage (tf_distribute training) ran
# on a standalone cluster (tests/cluster/test_training_worker_loss.py).
LOST_HOST = """An error occurred while calling z:org.apache.spark.api.python.PythonRDD.collectAndServe.
: org.apache.spark.SparkException: Job aborted due to stage failure: Could not recover from a \
failed barrier ResultStage. Most recent failure reason: Stage failed because barrier task \
ResultTask(32, 1) finished unsuccessfully.
ExecutorLostFailure (executor 0 exited unrelated to the running tasks) Reason: worker lost: \
127.0.0.1:46739 got disassociated
\tat org.apache.spark.scheduler.DAGScheduler.$anonfun$abortStage$3(DAGScheduler.scala:2935)
\tat scala.Option.getOrElse(Option.scala:201)
\tat py4j.ClientServerConnection.waitForCommands(ClientServerConnection.java:184)"""


def test_a_stage_failure_keeps_the_failed_tasks_reason_on_its_line():
    assert describe(RuntimeError(LOST_HOST)) == (
        "SparkException: Job aborted due to stage failure: Could not recover from a failed barrier "
        "ResultStage. Most recent failure reason: Stage failed because barrier task ResultTask(32, 1) "
        "finished unsuccessfully. ExecutorLostFailure (executor 0 exited unrelated to the running "
        "tasks) Reason: worker lost: 127.0.0.1:46739 got disassociated"
    )
