"""User feedback on predictions, stored durably, and the alert it can raise.

Every feedback row goes to a SQL database (SQLite file by default, PostgreSQL or any SQLAlchemy URL
with ``TWEETS_FEEDBACK_DB_URL``), so several workers, replicas and restarts share one history. The
alert rule ("more than 3 wrong predictions within 3 minutes") is evaluated on that shared history,
and an incident row makes it one e-mail per incident, whichever worker saw the feedback.

Wrong reports are also counted per second in ``wrong_counts``, so the rule reads at most one row per
second of the window, however many reports it holds: a flood costs no more per request than a
trickle. The window is exact to the second.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from tweet_sentiment.core.config import settings
from tweet_sentiment.core.dependencies import Dependency

log = logging.getLogger(__name__)

Clock = Callable[[], float]
IDEMPOTENCY_KEY_CHARS = 100
PREDICTION_ID_CHARS = 64

metadata = MetaData()
feedback_table = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("created_at", Float, nullable=False, index=True),
    Column("tweet", Text, nullable=False),
    Column("predicted_label", String(16), nullable=False),
    Column("true_label", String(16)),
    Column("wrong", Boolean, nullable=False),
    Column("model", String(200)),
    # The answer reported on (its `id`): joins the report to both models' answers in the prediction log.
    Column("prediction_id", String(PREDICTION_ID_CHARS), index=True),
    # A client's key for this report: a retry after a lost answer finds the row instead of adding one.
    Column("idempotency_key", String(IDEMPOTENCY_KEY_CHARS), unique=True),
)
wrong_counts_table = Table(
    "wrong_counts",
    metadata,
    Column("second", Integer, primary_key=True),  # int(created_at)
    Column("count", Integer, nullable=False),
)
incidents_table = Table(
    "incidents",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("opened_at", Float, nullable=False),
    Column("closed_at", Float),
    Column("is_open", Boolean),  # True while open, NULL once closed: the unique index allows one open incident
    Column("wrong_count", Integer, nullable=False),
    Column("sent_at", Float),
    Column("attempts", Integer, nullable=False, default=0),
    Column("claimed_until", Float),
    Column("last_error", Text),
    Index("one_open_incident", "is_open", unique=True),
)


def connect(url: str | None = None) -> Engine:
    """An engine with the tables created; SQLite in WAL mode so several processes can write.

    Pooled connections are checked before use, so the store recovers by itself after a database restart.
    """
    # hide_parameters: an error's text (logged, counted) never carries a client's tweet.
    engine = create_engine(url or settings().feedback_database_url(), pool_pre_ping=True, hide_parameters=True)
    if engine.dialect.name == "sqlite":
        if engine.url.database and engine.url.database != ":memory:":
            Path(engine.url.database).parent.mkdir(parents=True, exist_ok=True)  # a fresh state folder

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection, _record) -> None:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA busy_timeout=10000")

    metadata.create_all(engine)
    add_missing_columns(engine)
    return engine


def add_missing_columns(engine: Engine) -> None:
    """Columns added to the tables since a store was created, added to it (nullable: old rows keep NULL).

    The schema grows by a column at a time and never changes one, so this is all the migration it needs
    (Alembic would be the tool once it does).
    """
    table = feedback_table.name
    existing = {column["name"] for column in inspect(engine).get_columns(table)}
    for column in (c for c in feedback_table.columns if c.name not in existing):
        try:
            with engine.begin() as db:
                db.execute(text(f"ALTER TABLE {table} ADD COLUMN {column.name} {column.type}"))
                if column.unique:
                    db.execute(text(f"CREATE UNIQUE INDEX uq_{table}_{column.name} ON {table} ({column.name})"))
                elif column.index:  # named as create_all names it in a new store
                    db.execute(text(f"CREATE INDEX ix_{table}_{column.name} ON {table} ({column.name})"))
        except DBAPIError:  # another replica, starting at the same moment, added it first
            if column.name not in {c["name"] for c in inspect(engine).get_columns(table)}:
                raise


def is_outage(error: DBAPIError) -> bool:
    """True when the database could not be reached or did not answer (retry later), False when it refused
    the data it was given (retrying the same request fails the same way)."""
    return error.connection_invalidated or isinstance(error, OperationalError | InterfaceError)


def truth_of(predicted_label: str, given: str | None, wrong: bool) -> str:
    """A report's true label: the one given, else the predicted one, flipped when reported wrong."""
    if given:
        return given
    return {"positive": "negative", "negative": "positive"}[predicted_label] if wrong else predicted_label


def _open_incident_id(db) -> int | None:
    return db.execute(select(incidents_table.c.id).where(incidents_table.c.is_open)).scalar()


def _wrong_since(db, since: float) -> int:
    query = select(func.coalesce(func.sum(wrong_counts_table.c.count), 0)).where(wrong_counts_table.c.second > since)
    return int(db.execute(query).scalar())


@dataclass(frozen=True)
class AlertRule:
    """Alert when more than ``threshold`` wrong predictions are reported within ``window_seconds``."""

    threshold: int = 3
    window_seconds: float = 180.0

    @classmethod
    def from_env(cls) -> "AlertRule":
        config = settings()
        return cls(threshold=config.alert_threshold, window_seconds=config.alert_window_seconds)


@dataclass(frozen=True)
class AlertState:
    wrong_in_window: int
    threshold: int
    window_seconds: float
    incident_id: int | None  # the open incident, if any
    opened_now: bool  # this evaluation opened it: time to send the e-mail


@dataclass
class FeedbackStore:
    """Feedback rows and alert incidents in one database. ``clock`` is injectable for tests."""

    engine: Engine = field(default_factory=connect)
    rule: AlertRule = field(default_factory=AlertRule.from_env)
    clock: Clock = time.time
    health: Dependency = field(default_factory=lambda: Dependency("feedback_store"))

    def add(
        self,
        tweet: str,
        predicted_label: str,
        true_label: str | None,
        wrong: bool,
        model: str | None,
        idempotency_key: str | None = None,
        prediction_id: str | None = None,
    ) -> int:
        """Store a report; returns its id. A report whose ``idempotency_key`` is stored already is not added
        again: the stored one's id is returned."""
        if idempotency_key and (existing := self._id_of(idempotency_key)) is not None:
            return existing
        now = self.clock()
        row = {
            "created_at": now,
            "tweet": tweet,
            "predicted_label": predicted_label,
            "true_label": true_label,
            "wrong": wrong,
            "model": model,
            "idempotency_key": idempotency_key,
            "prediction_id": prediction_id,
        }
        try:
            with self.engine.begin() as db:
                feedback_id = db.execute(insert(feedback_table).values(**row)).inserted_primary_key[0]
                if wrong:
                    db.execute(self._count_one(int(now)))
        except IntegrityError:  # the same key, stored by a concurrent retry a moment ago
            if idempotency_key and (existing := self._id_of(idempotency_key)) is not None:
                return existing
            raise
        return feedback_id

    def _id_of(self, idempotency_key: str) -> int | None:
        query = select(feedback_table.c.id).where(feedback_table.c.idempotency_key == idempotency_key)
        with self.engine.connect() as db:
            return db.execute(query).scalar()

    def _count_one(self, second: int):
        """``wrong_counts[second] += 1``, as one atomic upsert (SQLite and PostgreSQL alike)."""
        dialect = {"sqlite": sqlite, "postgresql": postgresql}[self.engine.dialect.name]
        statement = dialect.insert(wrong_counts_table).values(second=second, count=1)
        return statement.on_conflict_do_update(
            index_elements=["second"], set_={"count": wrong_counts_table.c.count + 1}
        )

    def wrong_count(self, since: float | None = None) -> int:
        """How many wrong predictions were reported since a time (default: in the window ending now)."""
        since = self.clock() - self.rule.window_seconds if since is None else since
        with self.engine.connect() as db:
            return _wrong_since(db, since)

    def recent_wrong(self, since: float, limit: int) -> list[dict]:
        """The latest ``limit`` wrong-prediction reports since a time, oldest first."""
        query = (
            select(feedback_table)
            .where(feedback_table.c.wrong, feedback_table.c.created_at > since)
            .order_by(feedback_table.c.created_at.desc())
            .limit(limit)
        )
        with self.engine.connect() as db:
            return [dict(row._mapping) for row in reversed(db.execute(query).all())]

    def state(self) -> AlertState:
        """The alert state now, read only."""
        with self.engine.connect() as db:
            open_id = _open_incident_id(db)
        return AlertState(self.wrong_count(), self.rule.threshold, self.rule.window_seconds, open_id, False)

    def evaluate(self) -> AlertState:
        """Open an incident when the rule fires and none is open; close it once the window calms down."""
        now = self.clock()
        opened_now = False
        with self.engine.begin() as db:
            open_id = _open_incident_id(db)
            # Counted after the open incident is read, so the count holds every report that opened it: counted
            # before, a worker could close an incident another had opened a moment later, and a second one opens.
            count = _wrong_since(db, now - self.rule.window_seconds)
            firing = count > self.rule.threshold
            if not firing and open_id is not None:
                db.execute(
                    update(incidents_table).where(incidents_table.c.id == open_id).values(is_open=None, closed_at=now)
                )
                open_id = None
        if firing and open_id is None:
            try:
                with self.engine.begin() as db:
                    open_id = db.execute(
                        insert(incidents_table).values(opened_at=now, is_open=True, wrong_count=count, attempts=0)
                    ).inserted_primary_key[0]
                opened_now = True
            except IntegrityError:  # another worker opened it a moment ago
                with self.engine.connect() as db:
                    open_id = _open_incident_id(db)
        return AlertState(count, self.rule.threshold, self.rule.window_seconds, open_id, opened_now)

    def unsent_incidents(self) -> list[dict]:
        query = select(incidents_table).where(incidents_table.c.sent_at.is_(None)).order_by(incidents_table.c.id)
        with self.engine.connect() as db:
            return [dict(row._mapping) for row in db.execute(query)]

    def claim(self, incident_id: int, seconds: float = 60.0) -> bool:
        """Take the right to send this incident's e-mail for a while, so no two workers send it."""
        now = self.clock()
        claimable = (incidents_table.c.claimed_until.is_(None)) | (incidents_table.c.claimed_until < now)
        with self.engine.begin() as db:
            result = db.execute(
                update(incidents_table)
                .where(incidents_table.c.id == incident_id, incidents_table.c.sent_at.is_(None), claimable)
                .values(claimed_until=now + seconds, attempts=incidents_table.c.attempts + 1)
            )
        return result.rowcount == 1

    def mark_sent(self, incident_id: int) -> None:
        with self.engine.begin() as db:
            db.execute(
                update(incidents_table)
                .where(incidents_table.c.id == incident_id)
                .values(sent_at=self.clock(), last_error=None)
            )

    def mark_failed(self, incident_id: int, error: str, retry_in: float) -> None:
        with self.engine.begin() as db:
            db.execute(
                update(incidents_table)
                .where(incidents_table.c.id == incident_id)
                .values(last_error=error, claimed_until=self.clock() + retry_in)
            )

    def labelled(self, since: float | None = None) -> list[dict]:
        """Every feedback (since a time) as ``text``/``label`` (1 positive) rows, oldest first, with when, on which
        model's answer and on which prediction id."""
        query = select(feedback_table).order_by(feedback_table.c.created_at, feedback_table.c.id)
        if since is not None:
            query = query.where(feedback_table.c.created_at >= since)
        with self.engine.connect() as db:
            rows = db.execute(query).all()
        return [
            {
                "text": row.tweet,
                "label": int(truth_of(row.predicted_label, row.true_label, row.wrong) == "positive"),
                "created_at": row.created_at,
                "model": row.model,
                "prediction_id": row.prediction_id,
            }
            for row in rows
        ]

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as db:
            total = db.execute(select(func.count()).select_from(feedback_table)).scalar()
            wrong = db.execute(select(func.count()).select_from(feedback_table).where(feedback_table.c.wrong)).scalar()
        return {"feedback": total, "wrong": wrong}
