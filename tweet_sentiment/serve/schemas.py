"""Request and response types of the service, shared by service.py, its tests and its clients.

Request bodies are strict: an unknown field is refused (400, its name in `detail`), and no value is coerced
(`"wrong": "yes"` or `1` is not `true`). Every text field a store keeps refuses what the stores cannot hold:
NUL characters (PostgreSQL's text cannot) by its pattern, lone surrogates (not UTF-8) by pydantic itself.
"""

from typing import Annotated, Literal, Self

from bentoml.validators import ContentType
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, model_validator
from pydantic_core import to_json
from starlette.responses import Response

from tweet_model.pyfunc import EXAMPLE_TWEETS
from tweet_sentiment.core.feedback import IDEMPOTENCY_KEY_CHARS, PREDICTION_ID_CHARS

MAX_TWEET_CHARS = 1_000  # a tweet is at most 280 characters; leave room for URLs and entities
MAX_TWEETS_PER_REQUEST = 256

# Python's whitespace (str.isspace), spelled out: the same class in the OpenAPI's ECMA regex and in pydantic's,
# so a tweet the document calls valid is one the server accepts (their \s differ, e.g. on \x1c and \ufeff).
WHITESPACE = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NOT_BLANK_NO_NULL = rf"^[^\x00]*[^\x00{WHITESPACE}][^\x00]*$"
NO_NULL = r"^[^\x00]*$"

# Examples (OpenAPI 3.0 "example"), not defaults: the Swagger page shows them, and a request
# without the field is a 400.
Tweet = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_TWEET_CHARS, pattern=NOT_BLANK_NO_NULL),
    Field(
        description=f"Raw tweet text, 1 to {MAX_TWEET_CHARS} characters, not only whitespace, no null bytes",
        json_schema_extra={"example": EXAMPLE_TWEETS[0]},
    ),
]
Tweets = Annotated[
    list[Tweet],
    Field(min_length=1, max_length=MAX_TWEETS_PER_REQUEST, json_schema_extra={"example": EXAMPLE_TWEETS}),
]
Label = Literal["negative", "positive"]
IdempotencyKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=IDEMPOTENCY_KEY_CHARS, pattern=NO_NULL),
    Field(description="Any unique string of the client's (a UUID): a retry with the same key stores nothing twice"),
]
PredictionId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=PREDICTION_ID_CHARS, pattern=NO_NULL),
    Field(description="The `id` of the prediction reported on: joins the report to the answers of both models"),
]
ModelName = Annotated[
    str,
    StringConstraints(max_length=200, pattern=NO_NULL),
    Field(description="The `model` of the prediction (default: this server's)"),
]

ModelChoice = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=NO_NULL),
    Field(
        description="The model to answer, as the server was started with it (`/status` lists them); default: "
        "the served one"
    ),
]


class Request(BaseModel):
    """A request body: unknown fields are refused and no value is coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


class PredictRequest(Request):
    tweet: Tweet
    model: ModelChoice | None = None


class ExplainRequest(PredictRequest):
    pass


class PredictBatchRequest(Request):
    tweets: Tweets
    model: ModelChoice | None = None


# A report gives the true label or says whether the prediction was wrong: exactly one, not null.
TRUE_LABEL_OR_WRONG = [
    {"required": ["true_label"], "properties": {"true_label": {"type": "string"}}},
    {"required": ["wrong"], "properties": {"wrong": {"type": "boolean"}}},
]


class FeedbackReport(Request):
    """A report on one prediction: its true label, or whether it was wrong (exactly one of them)."""

    model_config = ConfigDict(json_schema_extra={"oneOf": TRUE_LABEL_OR_WRONG})

    tweet: Tweet
    predicted_label: Label
    true_label: Label | None = None
    wrong: StrictBool | None = None
    model: ModelName | None = None
    idempotency_key: IdempotencyKey | None = None
    prediction_id: PredictionId | None = None

    @model_validator(mode="after")
    def one_verdict(self) -> Self:
        if (self.true_label is None) == (self.wrong is None):
            raise ValueError("give true_label, or wrong (true/false): one of them")
        return self


class StatusRequest(Request):
    pass


class Prediction(BaseModel):
    id: str = Field(description="This answer's id: name it in /feedback (`prediction_id`)")
    label: Label
    prob_positive: float = Field(ge=0, le=1)
    model: str = Field(description="Registered model and version that answered, e.g. tweet-lstm/3@champion")
    language: str | None = Field(
        default=None, description="ISO 639-1 language of the tweet; null when too short or mixed to tell"
    )
    warning: str | None = Field(default=None, description="Set when the prediction is unreliable, e.g. not English")
    brands: list[str] = Field(
        default_factory=list, description="The configured brands the tweet names (TWEETS_BRANDS_FILE), as configured"
    )


class Contribution(BaseModel):
    text: str = Field(description="A word of the explained text: a run of non-space characters")
    start: int = Field(description="Its offset in the explained text, in code points: explained_text[start:end]")
    end: int
    effect: float = Field(description="How much it raised P(positive): negative where it pushed towards negative")


class ExplainedPrediction(Prediction):
    method: Literal["occlusion", "coefficients"] = Field(
        description="occlusion: P(positive) minus P(positive) without the word, every variant in one model call; "
        "coefficients: exact, the word's terms in the logistic regression's log-odds taken out"
    )
    explained: Literal["tweet", "english_translation"] = Field(
        description="What the words are of: the tweet as sent, or the English translation a French tweet was "
        "answered through (the route averages the model's P with a lexicon's: effects are on the answer's P)"
    )
    explained_text: str = Field(description="The text the offsets point into")
    contributions: list[Contribution] = Field(description="Every word's effect, in text order")
    ranked: list[int] = Field(description="The contributions' indices, strongest effect (either way) first")


def answered(answers: dict | list[dict]) -> Response:
    """A route's answer already shaped as its response type (`Prediction`, or a list of them), encoded by
    pydantic's serializer straight from the dicts: the same bytes as BentoML's rendering of the models, without
    a model a tweet, nor BentoML's second pass over them (it dumps the models before it encodes them)."""
    return Response(to_json(answers), media_type="application/json")


# Declaring the content type matters for speed: without it BentoML rebuilds the JSON schema of a
# list output on every response to find its MIME type (20% of the server's CPU under load).
Predictions = Annotated[list[Prediction], ContentType("application/json")]


class FeedbackReceipt(BaseModel):
    id: int = Field(description="The stored report's id")
    wrong: bool
    wrong_in_window: int | None = Field(
        description="Wrong predictions reported in the alert window; null when the report was stored but the "
        "alert state could not be read"
    )
    alert_open: bool | None = Field(description="null when the alert state could not be read")


class ServedModelInfo(BaseModel):
    name: str = Field(description="Registered model in MLflow")
    version: str = Field(description="Its version in the MLflow Model Registry")
    alias: str | None = Field(default=None, description="The MLflow alias the server was started with, if any")
    bento_tag: str
    family: str
    mlflow_run_id: str


class FollowingStatus(BaseModel):
    """How the server follows the alias it was started with (TWEETS_ALIAS_POLL_SECONDS)."""

    poll_seconds: float = Field(description="How often the worker looks the alias up in the registry")
    checked_at: float | None = Field(description="Unix time of its last look; null before the first")
    failed_version: str | None = Field(description="A version the alias names that is not served: it failed")
    failed_reason: str | None = Field(description="Why it failed to load or to answer")


class ShadowStatus(BaseModel):
    """The challenger scored in shadow, compared with the champion by this worker since it started."""

    challenger: str = Field(description="Registered model and version of the challenger, e.g. tweet-lstm/4@challenger")
    queued: int = Field(description="Champion model calls waiting for the challenger")
    scored: int = Field(description="Tweets both models answered")
    skipped: int = Field(description="Tweets the challenger skipped: its queue was full")
    failed: int = Field(description="Tweets the challenger failed on")
    agreement: float | None = Field(description="Share of scored tweets both models gave the same label")
    labelled: int = Field(description="Scored tweets with labelled feedback")
    champion_accuracy: float | None = Field(description="On those labelled tweets")
    challenger_accuracy: float | None = Field(description="On the same labelled tweets")
    following: FollowingStatus | None = Field(default=None, description="null when its alias is not followed")


class NamedModelStatus(BaseModel):
    """A model a request may name, and the version answering for it now."""

    name: str = Field(description="How a request names it (`model`), e.g. tweet-minilm@champion")
    model: str = Field(description="The registered version answering now, e.g. tweet-minilm/2@champion")
    following: FollowingStatus | None = Field(description="null when it is not followed by alias")


class Status(BaseModel):
    model: str
    served: ServedModelInfo
    family: str
    alert_open: bool | None = Field(default=None, description="null while the feedback store is unavailable")
    wrong_in_window: int | None = Field(default=None, description="null while the feedback store is unavailable")
    alert_threshold: int
    alert_window_seconds: float
    degraded: list[str] = Field(
        description="dependencies failing now: feedback_store, prediction_log, model_registry (the alias followed), "
        "french_translation"
    )
    shadow: ShadowStatus | None = Field(default=None, description="null when no challenger is served")
    following: FollowingStatus | None = Field(
        default=None, description="null when the served model is not followed by alias (a version, a tag, an image)"
    )
    models: list[NamedModelStatus] = Field(
        description="The models a request may name, the served one (its default) first"
    )
    brands: list[str] = Field(description="The brands counted and watched (TWEETS_BRANDS_FILE)")
