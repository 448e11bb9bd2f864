"""Score a tweet archive on Spark with a registered model: the same pyfunc the server loads, in one pass a batch.

The job reads Parquet, CSV or JSON lines, keeps every input column, and adds the fields the server answers
(``label``, ``prob_positive``, ``model``, ``language``, ``warning``, ``brands``) with the model's version and
alias, and a ``reason`` where a tweet could not be scored (no text, or only whitespace): such rows are kept, not
dropped. Each Arrow batch is answered in one Python call (``mapInPandas``: the model, the language identifier,
the French route and the brands together, batch/udfs.py), as the server answers a model call.

The output is written to a hidden staging folder beside the target, then renamed into place, so a job stopped
midway leaves no half-written output that looks whole; the next run removes what a stopped one left.

Scratch (Spark's local folders, the JVM's temporary files, the model's copy for the executors) goes to one
folder under the temporary folder (TMPDIR), removed when the session ends.
"""

import os
import sys
import tempfile
import time
import uuid
import warnings
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from pyspark import SparkConf, SparkContext
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from tweet_sentiment.batch.udfs import Answering
from tweet_sentiment.core.brands import Brands
from tweet_sentiment.core.config import ROOT, settings
from tweet_sentiment.core.french import answers_french
from tweet_sentiment.core.models import ModelNotFound, ModelSpec, model_label

# pandas 3 runs the job's Python here: the tests compare its answers with the server's.
warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)

# What the job adds to every row, after the input's own columns: the server's answer, typed.
OUTPUT_FIELDS = T.StructType(
    [
        T.StructField("label", T.StringType()),  # null where the tweet was not scored (see reason)
        T.StructField("prob_positive", T.DoubleType()),
        T.StructField("model", T.StringType()),  # as the server names it: tweet-lstm/3@champion
        T.StructField("model_version", T.IntegerType()),
        T.StructField("model_alias", T.StringType()),
        T.StructField("language", T.StringType()),
        T.StructField("warning", T.StringType()),
        T.StructField("reason", T.StringType()),  # why a tweet was not scored; null when it was
        T.StructField("brands", T.ArrayType(T.StringType())),  # the configured brands it names (TWEETS_BRANDS_FILE)
    ]
)
FORMATS = {".parquet": "parquet", ".csv": "csv", ".json": "json", ".jsonl": "json", ".ndjson": "json"}
INCOMPLETE = ".incomplete-"  # staging folders: hidden (a leading dot), so Spark and Hive readers skip them
# Shipped to the executors (SparkContext.addPyFile): what the job's Python imports of the project, nothing else
# (the model carries its own code, and the executors load it from their copy).
EXECUTOR_CODE = (
    "tweet_model/__init__.py",
    "tweet_model/pyfunc.py",
    "tweet_model/runtime.py",
    "tweet_model/text.py",
    "tweet_sentiment/__init__.py",
    "tweet_sentiment/core/__init__.py",
    "tweet_sentiment/core/brands.py",
    "tweet_sentiment/core/config.py",
    "tweet_sentiment/core/language.py",
    "tweet_sentiment/core/french.py",
    "tweet_sentiment/batch/__init__.py",
    "tweet_sentiment/batch/udfs.py",
)


class BatchInputError(ValueError):
    """The input or output of a job is not usable as given; the message says what was found."""


@dataclass(frozen=True)
class BatchModel:
    """A registered model version, pinned when the job starts: every executor scores with the same one."""

    name: str
    version: str
    alias: str | None
    french_by_translation: bool = False  # as a server of this version answers French tweets (core/french.py)

    @classmethod
    def resolve(cls, spec: str) -> "BatchModel":
        """``NAME@ALIAS`` or ``NAME/VERSION``, parsed as the server parses them (ModelSpec)."""
        model = ModelSpec.parse(spec)
        if model.bento_tag:
            raise ModelNotFound(f"{spec!r}: batch scoring takes a registered model, NAME@ALIAS or NAME/VERSION")
        client = MlflowClient(settings().tracking_uri)
        version = model.registered_version(client)  # an alias is checked in the registry as it is resolved
        if model.version:  # a version named outright is checked here
            try:
                client.get_model_version(model.name, version)
            except mlflow.exceptions.MlflowException as error:
                raise ModelNotFound(f"{spec!r}: {model.name} has no version {version}") from error
        metrics = client.get_run(client.get_model_version(model.name, version).run_id).data.metrics
        return cls(model.name, version, model.alias, answers_french(metrics, settings().french_min_accuracy))

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    @property
    def label(self) -> str:
        return model_label(self.name, self.version, self.alias)


@dataclass
class BatchSummary:
    """What a job wrote: where, how many tweets, by label and language, and how fast."""

    output: str
    model: str
    tweets: int
    seconds: float
    labels: dict[str, int] = field(default_factory=dict)  # "not scored" for the rows with a reason
    languages: dict[str, int] = field(default_factory=dict)  # "unknown" where the identifier was not confident

    @property
    def tweets_per_second(self) -> float:
        return self.tweets / self.seconds if self.seconds else 0.0

    def __str__(self) -> str:
        def counts(items: dict[str, int]) -> str:
            return ", ".join(f"{key} {count:,}" for key, count in items.items())

        return (
            f"scored {self.tweets:,} tweets with {self.model} in {self.seconds:.1f} s "
            f"({self.tweets_per_second:,.0f} tweets/s)\n  labels: {counts(self.labels)}\n"
            f"  languages: {counts(self.languages)}\n  output: {self.output}"
        )


@contextmanager
def spark_session(master: str | None = None, task_threads: int = 1) -> Iterator[SparkSession]:
    """A SparkSession for scoring, stopped at the end: on ``master``, else spark-submit's, else ``local[*]``.
    Each task's model runtime gets ``task_threads`` threads (as many cores as a task takes, spark.task.cpus),
    so concurrent tasks do not oversubscribe an executor. Its scratch stays in one temporary folder, removed
    with the session: Spark's local folders (``spark-*``, ``blockmgr-*``), the JVM's temporary files (native
    libraries it unpacks), the model's copy."""
    master = master or SparkConf().get("spark.master", "local[*]")
    os.environ.update(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false")  # Spark's progress bar is the job's
    with tempfile.TemporaryDirectory(prefix="tweet-batch-") as scratch:
        java_options = f"-Djava.io.tmpdir={scratch}"
        builder = (
            SparkSession.builder.master(master)
            .appName("tweet-sentiment-batch")
            .config("spark.task.cpus", str(task_threads))
            .config("spark.executorEnv.OMP_NUM_THREADS", str(task_threads))  # read by tweet_model.runtime
            .config("spark.ui.showConsoleProgress", "true")  # Spark's own progress bar, on stderr
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .config("spark.local.dir", scratch)
            .config("spark.driver.extraJavaOptions", java_options)  # the JVM pyspark starts is given these
            .config("spark.executor.extraJavaOptions", java_options)
        )
        if master.startswith("local"):  # the executors are this machine's: the driver's interpreter, its packages
            os.environ.update(PYSPARK_PYTHON=sys.executable)  # read by pyspark, not by the spark.pyspark.python conf
        spark = builder.getOrCreate()
        try:
            spark.sparkContext.addPyFile(str(executor_code(Path(scratch))))
            yield spark
        finally:
            spark.stop()
            stop_jvm()


def stop_jvm() -> None:
    """Stop the JVM pyspark started, which it keeps running after SparkSession.stop() for a later session of
    this process: nothing of a job outlives it. The JVM exits when its standard input closes."""
    gateway = SparkContext._gateway
    if gateway is None:
        return
    gateway.shutdown()
    gateway.proc.stdin.close()
    gateway.proc.wait(timeout=60)
    SparkContext._gateway = SparkContext._jvm = None


def executor_code(folder: Path) -> Path:
    """A zip of the project code the executors import (EXECUTOR_CODE), for SparkContext.addPyFile."""
    archive = folder / "tweet_sentiment_batch.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for file in EXECUTOR_CODE:
            zipped.write(ROOT / file, file)
    return archive


def read_tweets(spark: SparkSession, path: str, text_column: str, fmt: str | None = None) -> DataFrame:
    """The archive at ``path`` (a file or a folder of them) as a DataFrame; its text column as strings."""
    fmt = fmt or FORMATS.get(Path(path.rstrip("/")).suffix.lower())
    if fmt is None:
        raise BatchInputError(f"cannot tell the format of {path!r} from its name: pass --format parquet, csv or json")
    reader = spark.read
    if fmt == "csv":  # tweets hold commas, quotes and line breaks
        reader = reader.options(header=True, multiLine=True, escape='"')
    try:
        tweets = reader.format(fmt).load(path)
    except Exception as error:  # Spark's AnalysisException for a missing path or unreadable files
        raise BatchInputError(f"cannot read {path!r} as {fmt}: {str(error).splitlines()[0]}") from error
    if text_column not in tweets.columns:
        raise BatchInputError(
            f"{path!r} has no column {text_column!r}; its columns: {', '.join(tweets.columns) or 'none'}. "
            "Name the text column with --text-column."
        )
    clash = sorted(set(tweets.columns) & set(OUTPUT_FIELDS.fieldNames()))
    if clash:
        raise BatchInputError(
            f"{path!r} already has the column(s) {', '.join(clash)}, which the scores would replace: "
            "rename them in the input first"
        )
    return tweets.withColumn(text_column, F.col(text_column).cast("string"))


def score(tweets: DataFrame, model: BatchModel, text_column: str) -> DataFrame:
    """Every input row with OUTPUT_FIELDS added, one Python call a batch (batch/udfs.py). The model's folder is
    shipped to the executors once; the brands are the driver's configuration."""
    spark = tweets.sparkSession
    folder = mlflow.artifacts.download_artifacts(model.uri, dst_path=tempfile.mkdtemp(dir=spark_scratch(spark)))
    spark.sparkContext.addFile(folder, recursive=True)
    answering = Answering(
        model_folder=Path(folder).name,
        label=model.label,
        version=int(model.version),
        alias=model.alias,
        french_by_translation=model.french_by_translation,
        brands=Brands.load(),
        text_column=text_column,
    )
    return tweets.mapInPandas(answering.batches, T.StructType([*tweets.schema.fields, *OUTPUT_FIELDS.fields]))


def spark_scratch(spark: SparkSession) -> str:
    """The session's scratch folder (spark_session's), where the driver may write what it ships."""
    return spark.sparkContext.getConf().get("spark.local.dir", tempfile.gettempdir())


def hadoop_target(spark: SparkSession, output: str, overwrite: bool):
    """Hadoop's Path class, the output's file system and its qualified path (local, HDFS, S3A... alike);
    BatchInputError if it exists and is not to be overwritten."""
    context = spark.sparkContext
    HadoopPath = context._jvm.org.apache.hadoop.fs.Path
    target = HadoopPath(output)
    fs = target.getFileSystem(context._jsc.hadoopConfiguration())
    target = fs.makeQualified(target)
    if fs.exists(target) and not overwrite:
        raise BatchInputError(f"{output!r} exists: pass --overwrite to replace it")
    return HadoopPath, fs, target


def write_atomically(
    rows: DataFrame, output: str, overwrite: bool = False, partitions: int | None = None, partition_by: tuple = ()
) -> None:
    """Write Parquet to a staging folder beside ``output``, then rename it into place (the previous output, with
    ``overwrite``, is replaced only once the new one is whole). Each task writes its own files, in parallel."""
    HadoopPath, fs, target = hadoop_target(rows.sparkSession, output, overwrite)
    parent, name = target.getParent(), target.getName()
    for stale in fs.globStatus(HadoopPath(parent, f".{name}{INCOMPLETE}*")) or []:
        fs.delete(stale.getPath(), True)  # what a stopped run left: never readable as output
    staging = HadoopPath(parent, f".{name}{INCOMPLETE}{uuid.uuid4().hex}")
    if partitions:
        rows = rows.repartition(partitions)
    rows.write.partitionBy(*partition_by).parquet(staging.toString())
    replaced = HadoopPath(parent, f".{name}.replaced-{uuid.uuid4().hex}")
    if fs.exists(target) and not fs.rename(target, replaced):
        raise OSError(f"could not move the previous {output!r} aside; the new output is at {staging}")
    if not fs.rename(staging, target):
        raise OSError(f"could not rename {staging} to {output!r}")
    fs.delete(replaced, True)


def summarise(spark: SparkSession, output: str, model: BatchModel, seconds: float) -> BatchSummary:
    """Counts per label and language of a written output (read back: what is there is what is counted)."""
    written = spark.read.parquet(output)
    label = F.coalesce(F.col("label"), F.lit("not scored")).alias("label")
    language = F.coalesce(F.col("language"), F.lit("unknown")).alias("language")
    by = written.groupBy(label, language).count().toPandas()
    return BatchSummary(
        output=output,
        model=model.label,
        tweets=int(by["count"].sum()),
        seconds=seconds,
        labels=by.groupby("label")["count"].sum().sort_values(ascending=False).astype(int).to_dict(),
        languages=by.groupby("language")["count"].sum().sort_values(ascending=False).astype(int).to_dict(),
    )


def score_archive(
    spark: SparkSession,
    model_spec: str,
    input_path: str,
    output: str,
    text_column: str = "text",
    fmt: str | None = None,
    overwrite: bool = False,
    partitions: int | None = None,
    partition_by: tuple[str, ...] = (),
) -> BatchSummary:
    """The whole job: check the output, resolve the model, read, score, write atomically, summarise."""
    hadoop_target(spark, output, overwrite)  # a second, before a model is looked up and loaded
    model = BatchModel.resolve(model_spec)
    tweets = read_tweets(spark, input_path, text_column, fmt)
    missing = sorted(set(partition_by) - set(tweets.columns) - set(OUTPUT_FIELDS.fieldNames()))
    if missing:
        raise BatchInputError(f"cannot partition by {', '.join(missing)}: not a column of the input or the output")
    start = time.perf_counter()
    write_atomically(score(tweets, model, text_column), output, overwrite, partitions, partition_by)
    return summarise(spark, output, model, time.perf_counter() - start)


def brand_counts(spark: SparkSession, scored: str, time_column: str, step: str = "day") -> pd.DataFrame:
    """Tweets and negative tweets per brand and ``step`` (Spark's date_trunc unit: hour, day, week) of a scored
    output (``score_archive``'s), counted on Spark: the small result comes back to the driver. Rows not scored, or
    whose time cannot be read, are left out."""
    rows = spark.read.parquet(scored)
    if time_column not in rows.columns:
        raise BatchInputError(f"{scored!r} has no column {time_column!r}; its columns: {', '.join(rows.columns)}")
    when = F.date_trunc(step, F.col(time_column).cast("timestamp"))
    named = rows.where(F.col("label").isNotNull() & when.isNotNull()).select(
        F.explode("brands").alias("brand"), when.alias("time"), (F.col("label") == "negative").cast("int").alias("n")
    )
    counts = named.groupBy("brand", "time").agg(F.count("*").alias("tweets"), F.sum("n").alias("negative"))
    return counts.toPandas()


def log_to_mlflow(summary: BatchSummary, input_path: str, experiment: str = "tweet-batch-scoring") -> str:
    """An MLflow run recording the job: input, model, output, counts and rate. Returns its id."""
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=f"score {Path(input_path).name}") as run:
        mlflow.log_params({"input": input_path, "output": summary.output, "model": summary.model})
        mlflow.log_metrics(
            {
                "tweets": summary.tweets,
                "seconds": summary.seconds,
                "tweets_per_second": summary.tweets_per_second,
                **{f"label_{key.replace(' ', '_')}": count for key, count in summary.labels.items()},
            }
        )
        mlflow.log_dict({"labels": summary.labels, "languages": summary.languages}, "summary.json")
    return run.info.run_id
