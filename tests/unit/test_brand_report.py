"""The brand report of what the server answered: a week of a steady brand, then its surge, found where it is."""

from datetime import datetime, timedelta

import pandas as pd

import brand_report
from tests.unit.test_drift import write_log


def test_the_report_marks_the_surge_and_nothing_before_it_or_for_a_quiet_brand(tmp_path, capsys):
    now = datetime.now().replace(second=0, microsecond=0)
    start, surge = now - timedelta(days=8), now - timedelta(hours=2)
    rows = []
    for step in range(int((now - start) / timedelta(minutes=10))):
        at = start + timedelta(minutes=10 * step)
        negative_share = 0.9 if at >= surge else 0.3
        for i in range(10):
            negative = i < negative_share * 10
            rows.append((f"@united {'awful' if negative else 'great'} flight {i}", 0.1 if negative else 0.9, at))
        if step % 72 == 0:  # twice a day
            rows.append(("@Delta fine", 0.1, at))
    log = pd.DataFrame(rows, columns=["tweet", "prob_positive", "timestamp"]).assign(model="tweet-lstm/1")
    write_log(tmp_path / "log", log, per_call=10)
    brand_report.main(["--log-dir", str(tmp_path / "log"), "--out", str(tmp_path / "out"), "--since", "7d"])
    shares = pd.read_csv(tmp_path / "out" / "brand_shares.csv", parse_dates=["time"])
    united = shares[shares["brand"] == "United"]
    surging = united.loc[united["surge"], "time"]
    assert len(surging) > 0 and surging.min() >= surge and surging.min() <= surge + timedelta(minutes=30)
    assert not shares.loc[shares["brand"] == "Delta", "surge"].any()  # always negative, and a few tweets
    assert shares["time"].min() >= now - timedelta(days=7, minutes=10)  # plotted from --since
    assert (tmp_path / "out" / "brand_shares.png").stat().st_size > 10_000
    printed = capsys.readouterr().out
    assert f"surges: {surging.min():%Y-%m-%d %H:%M}" in printed and "Delta" in printed
