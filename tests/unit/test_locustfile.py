"""The benchmarks' locust users: a run lasts its ``--run-time`` however long locust took to start."""

import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from benchmarks.run import locust_totals
from tweet_sentiment.core.config import ROOT

# Imported by locust beside the benchmarks' locustfile: holds the interpreter for 4 s without running gevent's
# loop, as importing the locustfile and its data does on a loaded machine, and says how long it held.
SLOW_START = """
import time
from gevent import monkey
start = time.monotonic()
monkey.get_original("time", "sleep")(4)
open({held!r}, "w").write(str(time.monotonic() - start))
"""


class Ok(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_) -> None:
        pass


def test_a_start_longer_than_the_run_time_still_sends_requests_for_the_run_time(tmp_path):
    held = tmp_path / "held"
    (tmp_path / "slow_start.py").write_text(SLOW_START.format(held=str(held)))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        locust = subprocess.run(
            [
                sys.executable, "-m", "locust", "-f", f"benchmarks/locustfile.py,{tmp_path / 'slow_start.py'}",
                "--headless", "--only-summary", "-u", "2", "-r", "2", "-t", "2s",
                "--host", f"http://127.0.0.1:{server.server_port}", "--csv", str(tmp_path / "run"), "OneTweet",
            ],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert float(held.read_text()) >= 4  # the start outlasted the run time
    total = locust_totals(tmp_path / "run")
    assert int(total["Request Count"]) > 0 and total["Failure Count"] == "0", locust.stderr[-2000:]
