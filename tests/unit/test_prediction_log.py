"""The prediction log's writer: off the request path, bounded, rotated, and read back as written."""

import json
import threading

from prometheus_client import REGISTRY

from tweet_sentiment.core.prediction_log import PredictionLog, read_prediction_log


def failures() -> float:
    return REGISTRY.get_sample_value("tweet_dependency_failures_total", {"dependency": "prediction_log"}) or 0.0


def test_records_are_written_as_one_line_per_model_call_and_read_back(tmp_path):
    log = PredictionLog(tmp_path, worker=3, flush_s=0.05)
    log.record(["a-1", "a-2"], ["good", "bad"], [0.9, 0.1], "m/1@champion")
    log.record(["a-3"], ["meh"], [0.5], "m/1@champion", challenger="m/2", challenger_probs=[0.4])
    log.close()
    lines = (tmp_path / "data.3.log").read_text().splitlines()
    assert [json.loads(line)["ids"] for line in lines] == [["a-1", "a-2"], ["a-3"]]
    rows = read_prediction_log(tmp_path).rows
    assert rows["id"].tolist() == ["a-1", "a-2", "a-3"]
    assert rows["challenger_prob"].tolist()[2] == 0.4 and rows["challenger"].tolist()[2] == "m/2"


def test_a_full_queue_drops_and_counts_records_without_waiting(tmp_path):
    log = PredictionLog(tmp_path, capacity=2, flush_s=60)  # nothing written meanwhile
    before = failures()
    for i in range(5):
        log.record([f"a-{i}"], ["t"], [0.5], "m/1")
    assert failures() - before == 3  # the two that found room are kept
    log.close()
    assert len(read_prediction_log(tmp_path).rows) == 2


def test_a_disk_that_refuses_writes_drops_and_counts_every_record(tmp_path):
    (tmp_path / "data.0.log").symlink_to("/dev/full")  # every write fails with ENOSPC, as on a full disk
    log = PredictionLog(tmp_path, flush_s=60)
    before = failures()
    for i in range(4):
        log.record([f"a-{i}"], ["t"], [0.5], "m/1")
    log.close()
    assert failures() - before == 4 and PredictionLog.health.degraded
    PredictionLog.health.succeeded()  # the class's health is shared: leave it as found


def test_the_file_is_rotated_past_its_size_and_old_files_are_read_too(tmp_path):
    log = PredictionLog(tmp_path, max_bytes=400, backups=2, flush_s=0.01)
    for i in range(12):
        log.record([f"a-{i}"], ["a tweet of some length"], [0.5], "m/1")
        threading.Event().wait(0.03)  # a flush between records
    log.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["data.0.log", "data.0.log.1", "data.0.log.2"]  # at most two old files kept
    assert all(path.stat().st_size <= 400 for path in tmp_path.iterdir())
    ids = read_prediction_log(tmp_path).rows["id"].tolist()
    assert ids == sorted(ids, key=lambda i: int(i.split("-")[1])) and ids[-1] == "a-11"  # the newest kept, in order
