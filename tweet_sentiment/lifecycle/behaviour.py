"""Behavioural tests in the spirit of CheckList (Ribeiro et al., ACL 2020): one small templated suite
per capability, pass rates per model.

Two kinds of test: a minimum functionality test (MFT) expects a label; an invariance test (INV)
expects a perturbation that should not matter (a mention, a link, an elongation, a typo) to leave
the predicted label unchanged. Tweets are everyday ones, not about airlines, but for the three suites
of what brands get (praise that names a problem, sarcasm, "X but Y"), hand-written in this file.
"""

from collections.abc import Callable
from dataclasses import dataclass
from itertools import product

import numpy as np

from tweet_model import DECISION_CUT

NEGATIVE, POSITIVE = 0, 1

THINGS = ["the new album", "my coffee this morning", "this phone", "the movie", "the game last night", "my new job"]
GOOD = ["great", "amazing", "wonderful", "fantastic", "awesome"]
BAD = ["terrible", "awful", "horrible", "boring", "disappointing"]
LIKE = ["like", "love", "enjoy"]
ADJECTIVES = [(adj, POSITIVE) for adj in GOOD] + [(adj, NEGATIVE) for adj in BAD]


# What brands get (hand-written, never trained on): praise that names a problem is praise; sarcasm's markers
# ("oh great", "thanks for nothing", 🙄) turn praise words into a complaint; after "but", the second clause decides.
BRANDS = ["@united", "@delta", "@amazon", "@spotify", "@verizon", "@starbucks"]
PRAISE_NAMING_A_PROBLEM = [
    "{brand} problem solved in five minutes",
    "{brand} nothing was broken, everything arrived on time",
    "not a single complaint about {brand}",
    "didn't expect much from {brand} but it exceeded every expectation",
    "{brand} no delays, no issues, no stress",
    "zero problems with {brand} so far",
    "never had an issue with {brand}",
    "{brand} fixed my problem in minutes, thank you",
    "{brand} was worried about the delay but we landed early",
    "{brand} not bad at all, i'd do it again",
    "no complaints, {brand} did everything right",
    "{brand} 10/10 would fly again",
]
SARCASM = [
    "oh great, another cancellation from {brand}",
    "thanks for nothing {brand}",
    "wow {brand}, three hours on hold, love it",
    "just what i needed, {brand} lost my bag again",
    "{brand} best customer service ever 🙄",
    "so glad {brand} charged me twice. thanks a lot",
    "great job {brand}, my order is a week late",
    "love waiting two hours for a reply from {brand}. fantastic",
    'yeah right {brand}, "fast delivery"',
    "{brand} thanks for the delay, really made my day 🙃",
]
# (first clause, second clause, the label the second gives)
CONTRAST = [
    ("the flight was delayed", "the crew was amazing", POSITIVE),
    ("the app crashed once", "support sorted it out fast", POSITIVE),
    ("the seats were cramped", "the staff were lovely", POSITIVE),
    ("it took a while", "it was worth the wait", POSITIVE),
    ("the price is high", "the quality is excellent", POSITIVE),
    ("the food looked great", "it tasted awful", NEGATIVE),
    ("the staff were friendly", "my bag never arrived", NEGATIVE),
    ("the app looks nice", "it crashes every day", NEGATIVE),
    ("the first week was fine", "now nothing works", NEGATIVE),
    ("the ad was funny", "the product is a scam", NEGATIVE),
]


@dataclass(frozen=True)
class Capability:
    name: str
    kind: str  # "MFT": each case is (tweet, expected label); "INV": each case is (tweet, perturbed tweet)
    cases: list[tuple[str, object]]


def _everyday() -> list[tuple[str, int]]:
    return [(f"{thing} was {adj}", label) for thing, (adj, label) in product(THINGS, ADJECTIVES)]


def _typo(word: str) -> str:
    """Swap two letters in the middle of a longer word: 'great' -> 'gerat'."""
    i = len(word) // 2
    return word[: i - 1] + word[i] + word[i - 1] + word[i + 1 :] if len(word) > 3 else word


def suite() -> list[Capability]:
    """Every capability, its cases generated from the templates above (deterministic)."""
    everyday = _everyday()
    bases = [text for text, _ in everyday]
    return [
        Capability("vocabulary", "MFT", everyday),
        Capability(
            "negation",
            "MFT",
            [(f"i {neg} {verb} {thing}", NEGATIVE) for neg, verb, thing in product(["don't", "do not"], LIKE, THINGS)]
            + [(f"{thing} was not {adj}", NEGATIVE) for thing, adj in product(THINGS, GOOD)],
        ),
        Capability(
            "intensifiers",
            "MFT",
            [
                (f"{thing} was {very} {adj}", label)
                for thing, very, (adj, label) in product(
                    THINGS,
                    ["very", "really", "so"],
                    [*((a, POSITIVE) for a in GOOD[:2]), *((a, NEGATIVE) for a in BAD[:2])],
                )
            ],
        ),
        Capability(
            "emoji_emoticons",
            "MFT",
            [(f"{thing} {face}", POSITIVE) for thing, face in product(THINGS, ["😍", "❤️", "😊", ":)", ":-D"])]
            + [(f"{thing} {face}", NEGATIVE) for thing, face in product(THINGS, ["😡", "😢", "👎", ":(", ":-("])],
        ),
        Capability(
            "mentions_urls_hashtags",
            "INV",
            [(text, f"{extra} {text}") for text in bases[::3] for extra in ["@jenny_m", "#monday"]]
            + [(text, f"{text} https://t.co/x7Yq2Lp") for text in bases[::3]],
        ),
        Capability(
            "elongations_typos",
            "INV",
            [(text, text.replace(" was ", " was sooooo ")) for text in bases[::2]]
            + [(text, " ".join([*text.split()[:-1], _typo(text.split()[-1])])) for text in bases[1::2]],
        ),
        Capability(
            "praise_naming_a_problem",
            "MFT",
            [(template.format(brand=brand), POSITIVE) for template in PRAISE_NAMING_A_PROBLEM for brand in BRANDS[:3]],
        ),
        Capability(
            "sarcasm", "MFT", [(template.format(brand=brand), NEGATIVE) for template in SARCASM for brand in BRANDS[3:]]
        ),
        Capability(
            "contrast_but",
            "MFT",
            [(f"{first} but {second}", label) for first, second, label in CONTRAST]
            + [(f"{brand} {first}, but {second}", label) for first, second, label in CONTRAST for brand in BRANDS[:2]],
        ),
    ]


def pass_rates(predict: Callable[[list[str]], list[float]], capabilities: list[Capability] | None = None) -> dict:
    """The share of passed cases per capability (labels at P(positive) >= DECISION_CUT)."""
    rates = {}
    for capability in capabilities or suite():
        if capability.kind == "MFT":
            texts, expected = zip(*capability.cases, strict=True)
            passed = (np.asarray(predict(list(texts))) >= DECISION_CUT).astype(int) == np.asarray(expected)
        else:
            originals, perturbed = zip(*capability.cases, strict=True)
            positive = [np.asarray(predict(list(texts))) >= DECISION_CUT for texts in (originals, perturbed)]
            passed = positive[0] == positive[1]
        rates[capability.name] = float(np.mean(passed))
    return rates
