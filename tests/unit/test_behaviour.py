"""The behavioural suite's machinery: its cases, its pass rates, and their place in every training run."""

import numpy as np
import pytest
from mlflow import MlflowClient

from tweet_sentiment.lifecycle import behaviour

CAPABILITIES = [
    "vocabulary",
    "negation",
    "intensifiers",
    "emoji_emoticons",
    "mentions_urls_hashtags",
    "elongations_typos",
    "praise_naming_a_problem",
    "sarcasm",
    "contrast_but",
]


def test_suite_has_every_capability_with_enough_distinct_cases():
    suite = behaviour.suite()
    assert [c.name for c in suite] == CAPABILITIES
    for capability in suite:
        assert len(set(capability.cases)) == len(capability.cases) >= 20, capability.name
        if capability.kind == "MFT":
            assert {label for _, label in capability.cases} <= {0, 1}
        else:
            assert all(original != perturbed for original, perturbed in capability.cases)
    assert behaviour._typo("great") == "gerat" and behaviour._typo("bad") == "bad"


def oracle(texts: list[str]) -> list[float]:
    """Knows every MFT answer, and gives a perturbed tweet its original's answer."""
    suite = behaviour.suite()
    expected = {text: label for c in suite if c.kind == "MFT" for text, label in c.cases}
    expected |= {perturbed: expected[original] for c in suite if c.kind == "INV" for original, perturbed in c.cases}
    return [float(expected[text]) for text in texts]


def test_pass_rates_of_a_perfect_a_constant_and_a_random_model():
    assert set(behaviour.pass_rates(oracle).values()) == {1.0}
    constant = behaviour.pass_rates(lambda texts: [0.9] * len(texts))
    assert constant["mentions_urls_hashtags"] == constant["elongations_typos"] == 1.0  # invariance is easy...
    assert constant["negation"] == 0.0 and 0.3 < constant["vocabulary"] < 0.7  # ...labels are not
    rng = np.random.default_rng(0)
    noisy = behaviour.pass_rates(lambda texts: rng.random(len(texts)).tolist())
    assert all(0.2 < rate < 0.8 for rate in noisy.values())


@pytest.mark.parametrize("family", ["logreg", "lstm", "transformer"])
def test_every_training_run_logs_its_pass_rates(trained, family):
    metrics = MlflowClient().get_run(trained[family].run_id).data.metrics
    assert {f"behaviour_{name}" for name in CAPABILITIES} <= set(metrics)
    assert all(0 <= metrics[f"behaviour_{name}"] <= 1 for name in CAPABILITIES)
