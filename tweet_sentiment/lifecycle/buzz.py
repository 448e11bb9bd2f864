"""Bad buzz per brand: the surge rule, its Prometheus rules and Alertmanager route, and the report of an archive.

The rule: a brand's share of negative tweets over a short window (``short``, 30 minutes) against its own share
over the baseline window just before it (``baseline``, 7 days). It fires when all three hold:

- the rise is significant: a one-sided binomial z, ``(p_short - p_base) / sqrt(p_base (1 - p_base) / n_short)``,
  of at least ``min_z`` (3: about one chance in 740 for a brand whose share has not moved);
- the rise matters: ``p_short - p_base`` of at least ``min_rise`` (15 points), so a big brand's small wobble
  does not page, however significant;
- the short window holds at least ``min_tweets`` (30): a brand with five tweets never pages;

and keeps holding for ``for_`` (10 minutes), against flapping. Each brand is measured against itself: an airline
that is always 70% negative has a baseline of 70%, and pages only when it rises well above that. The baseline
share is clamped to [2%, 98%] so that a brand never negative before cannot divide by zero.

    python -m tweet_sentiment.lifecycle.buzz rules > prometheus/brand_rules.yml     # what is committed
    python -m tweet_sentiment.lifecycle.buzz alertmanager --password-file /run/secrets/smtp > alertmanager.yml
"""

import argparse
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from tweet_sentiment.core.config import Settings, settings

SERIES = "tweet_brand_predictions_total"
ALERT = "BrandNegativeSurge"
BASELINE_CLAMP = (0.02, 0.98)


@dataclass(frozen=True)
class SurgeRule:
    """The rule's windows and thresholds (the module's docstring says why each), and its statistic in numpy."""

    short: str = "30m"  # Prometheus durations
    baseline: str = "7d"
    min_z: float = 3.0
    min_rise: float = 0.15
    min_tweets: int = 30
    for_: str = "10m"

    def z(self, negative_short, tweets_short, negative_base, tweets_base):
        """The one-sided binomial z of each row (NaN where a window has no tweet), as the recording rule has it."""
        with np.errstate(divide="ignore", invalid="ignore"):
            p_short = np.divide(negative_short, tweets_short)
            p_base = np.clip(np.divide(negative_base, tweets_base), *BASELINE_CLAMP)
            return (p_short - p_base) / np.sqrt(p_base * (1 - p_base) / tweets_short)

    def fires(self, negative_short, tweets_short, negative_base, tweets_base):
        """Whether the rule's condition holds for each row (before ``for_``)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            rise = np.divide(negative_short, tweets_short) - np.divide(negative_base, tweets_base)
        z = self.z(negative_short, tweets_short, negative_base, tweets_base)
        return (
            (np.nan_to_num(z) >= self.min_z)
            & (np.nan_to_num(rise) >= self.min_rise)
            & (np.asarray(tweets_short) >= self.min_tweets)
        )

    def explained(self) -> str:
        return (
            f"z >= {self.min_z:g}, a rise of at least {self.min_rise * 100:g} points and at least "
            f"{self.min_tweets} tweets in {self.short}, for {self.for_}"
        )


def _increase(window: str, offset: str | None = None, negative: bool = False) -> str:
    selector = f'{SERIES}{{label="negative"}}' if negative else SERIES
    return f"sum by (brand) (increase({selector}[{window}]{f' offset {offset}' if offset else ''}))"


def prometheus_rules(rule: SurgeRule = SurgeRule()) -> dict:
    """The recording rules and the alert, as a Prometheus rules file."""
    low, high = BASELINE_CLAMP
    # A value of a recorded series for this alert's brand, in its e-mail.
    query = '{{{{ with printf "{series}{{brand=%q}}" $labels.brand | query }}}}{{{{ . | first | value | {fmt} }}}}'

    def shown(series: str, fmt: str = 'printf "%.0f"') -> str:
        return query.format(series=series, fmt=fmt) + "{{ end }}"

    description = (
        f"{{{{ $labels.brand }}}}: {shown('brand:negative_share:short', 'humanizePercentage')} of "
        f"{shown('brand:tweets:short')} tweets negative in the last {rule.short}, against "
        f"{shown('brand:negative_share:baseline', 'humanizePercentage')} of {shown('brand:tweets:baseline')} in the "
        f'{rule.baseline} before (z = {{{{ $value | printf "%.1f" }}}}). The alert needs {rule.explained()}.'
    )
    return {
        "groups": [
            {
                "name": "tweet-sentiment-brands",
                "rules": [
                    {"record": "brand:tweets:short", "expr": _increase(rule.short)},
                    {"record": "brand:negative_tweets:short", "expr": _increase(rule.short, negative=True)},
                    {
                        "record": "brand:negative_share:short",
                        "expr": "brand:negative_tweets:short / brand:tweets:short",
                    },
                    {"record": "brand:tweets:baseline", "expr": _increase(rule.baseline, rule.short)},
                    {
                        "record": "brand:negative_share:baseline",
                        "expr": f"{_increase(rule.baseline, rule.short, negative=True)} / brand:tweets:baseline",
                    },
                    {
                        "record": "brand:negative_share:baseline_clamped",
                        "expr": f"clamp(brand:negative_share:baseline, {low}, {high})",
                    },
                    {
                        "record": "brand:negative_share:z",
                        "expr": "(brand:negative_share:short - brand:negative_share:baseline_clamped) / sqrt("
                        "brand:negative_share:baseline_clamped * (1 - brand:negative_share:baseline_clamped)"
                        " / brand:tweets:short)",
                    },
                    {
                        "alert": ALERT,
                        "expr": (
                            f"brand:negative_share:z >= {rule.min_z:g}"
                            f" and (brand:negative_share:short - brand:negative_share:baseline) >= {rule.min_rise:g}"
                            f" and brand:tweets:short >= {rule.min_tweets}"
                        ),
                        "for": rule.for_,
                        "labels": {"severity": "warning"},
                        "annotations": {
                            "summary": "Negative tweets surging for {{ $labels.brand }}",
                            "description": description,
                        },
                    },
                ],
            }
        ]
    }


def alertmanager_config(config: Settings, password_file: Path | None = None, group_wait: str = "30s") -> dict:
    """An Alertmanager configuration that e-mails BrandNegativeSurge with the service's SMTP settings (SMTP_*,
    ALERT_EMAIL_*), an e-mail a brand after ``group_wait``. A password is never written into it: give the file
    holding it."""
    if not config.smtp_host or not config.alert_email_to:
        raise ValueError("SMTP_HOST and ALERT_EMAIL_TO must be set: the alert is routed to e-mail")
    smtp = {
        "smtp_smarthost": f"{config.smtp_host}:{config.smtp_port}",
        "smtp_from": config.alert_email_from,
        "smtp_require_tls": config.smtp_starttls,
    }
    if config.smtp_user:
        smtp |= {"smtp_auth_username": config.smtp_user}
        if password_file:
            smtp |= {"smtp_auth_password_file": str(password_file)}
    body = (
        '{{ range .Alerts }}{{ if eq .Status "firing" }}FIRING{{ else }}RESOLVED{{ end }}: '
        "{{ .Annotations.summary }}\n{{ .Annotations.description }}\nsince {{ .StartsAt }}\n\n{{ end }}"
    )
    return {
        "global": smtp,
        "route": {
            "receiver": "brand-watch",
            "group_by": ["alertname", "brand"],  # an e-mail a brand
            "group_wait": group_wait,
            "group_interval": "5m",
            "repeat_interval": "4h",
        },
        "receivers": [
            {
                "name": "brand-watch",
                "email_configs": [
                    {
                        "to": config.alert_email_to,
                        "send_resolved": True,
                        "headers": {"Subject": "[tweet-sentiment] {{ .CommonAnnotations.summary }}"},
                        "text": body,
                    }
                ],
            }
        ],
    }


def to_yaml(document: dict) -> str:
    return yaml.safe_dump(document, sort_keys=False, width=1000, allow_unicode=True)


def counts_by_brand(rows: pd.DataFrame, step: str) -> pd.DataFrame:
    """Tweets and negative tweets per brand and ``step`` (a pandas frequency: "10min", "1D") from answered rows:
    ``timestamp``, ``brands`` (a list per tweet) and ``label``. A tweet naming two brands counts for both."""
    named = rows[["timestamp", "brands", "label"]].explode("brands").dropna(subset=["brands"])
    named = named.assign(
        time=named["timestamp"].dt.floor(step), tweets=1, negative=(named["label"] == "negative").astype(int)
    )
    return (
        named.groupby(["brands", "time"], as_index=False)[["tweets", "negative"]]
        .sum()
        .rename(columns={"brands": "brand"})
    )


def mark_surges(counts: pd.DataFrame, rule: SurgeRule, step: str) -> pd.DataFrame:
    """Per brand and ``step`` (every step from its first to its last, empty ones included): tweets, negative
    tweets, their share, and ``surge`` where the rule's condition holds over the short window ending there
    against the baseline window before it (``for_`` is left out: each point is judged on its own)."""
    short, baseline = pd.Timedelta(rule.short), pd.Timedelta(rule.baseline)
    frames = []
    for brand, group in counts.groupby("brand"):
        by_time = group.set_index("time")[["tweets", "negative"]].resample(step).sum()
        within = by_time.rolling(short).sum()
        before = by_time.rolling(baseline).sum().shift(freq=short).reindex(by_time.index).fillna(0)
        surge = rule.fires(within["negative"], within["tweets"], before["negative"], before["tweets"])
        share = by_time["negative"] / by_time["tweets"].where(by_time["tweets"] > 0)
        frames.append(by_time.assign(brand=brand, share=share, surge=np.asarray(surge)).reset_index(names="time"))
    columns = ["brand", "time", "tweets", "negative", "share", "surge"]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


def plot(timelines: pd.DataFrame, title: str):
    """Negative share per brand over time, surge points marked; a matplotlib figure."""
    import matplotlib.pyplot as plt

    brands = sorted(timelines["brand"].unique())
    figure, axes = plt.subplots(
        len(brands) or 1, 1, figsize=(10, 2.2 * max(len(brands), 1)), sharex=True, squeeze=False
    )
    for axis, brand in zip(axes[:, 0], brands, strict=False):
        rows = timelines[timelines["brand"] == brand]
        axis.plot(rows["time"], rows["share"], marker=".", label="negative share")
        surges = rows[rows["surge"]]
        axis.scatter(surges["time"], surges["share"], color="red", zorder=3, label=ALERT)
        axis.set_ylim(0, 1)
        axis.set_ylabel(brand)
    axes[0, 0].set_title(title)
    axes[0, 0].legend(loc="upper left")
    figure.tight_layout()
    return figure


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tweet_sentiment.lifecycle.buzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    rules = commands.add_parser("rules", help="the Prometheus rules file, on stdout")
    for field in ("short", "baseline", "for_"):
        rules.add_argument(f"--{field.rstrip('_')}", dest=field, help=f"default {getattr(SurgeRule(), field)}")
    manager = commands.add_parser("alertmanager", help="the Alertmanager configuration, from SMTP_* and ALERT_EMAIL_*")
    manager.add_argument("--password-file", type=Path, help="the file holding SMTP_PASSWORD, for Alertmanager")
    args = parser.parse_args(argv)
    if args.command == "rules":
        windows = {f: getattr(args, f) for f in ("short", "baseline", "for_") if getattr(args, f)}
        sys.stdout.write(to_yaml(prometheus_rules(replace(SurgeRule(), **windows))))
    else:
        sys.stdout.write(to_yaml(alertmanager_config(settings(), args.password_file)))


if __name__ == "__main__":
    main()
