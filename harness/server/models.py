"""The lab's tables (SQLAlchemy 2, typed). The database indexes; the evidence itself stays in each run's
evidence store and bundle, which the rows name by path and digest.

Changing a table means a new Alembic revision in ``migrations/versions/`` (``alembic revision --autogenerate``
against a database at head, with ``migrations/alembic.ini``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, String, Text, TypeDecorator, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def now() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime | None) -> datetime | None:
    """SQLite gives back naive datetimes: they were written in UTC."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


class UtcDateTime(TypeDecorator[datetime]):
    """A moment in UTC, given back aware whatever the database (SQLite keeps none of the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return aware(value)


class Role(StrEnum):
    EDITOR = "editor"
    REVIEWER = "reviewer"
    ADMIN = "admin"


class CandidateMode(StrEnum):
    DRIVER = "driver"          # the editor's driver API, at driver_url
    OPERATOR = "operator"      # no driver: a person plays the steps
    REFERENCE = "reference"    # the shipped reference candidate (with defects, to compare)


class SessionKind(StrEnum):
    SANDBOX = "sandbox"        # bac à sable
    REHEARSAL = "rehearsal"    # recette
    OFFICIAL = "official"      # homologation


class SessionStatus(StrEnum):
    OPEN = "open"
    SUBMITTED = "submitted"    # waiting in the reviewers' queue
    IN_REVIEW = "in_review"    # claimed by a reviewer
    LOCKED = "locked"          # signed: nothing changes any more


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # its worker died: the evidence recorded so far is intact
    ERROR = "error"              # it could not start (a changed campaign, an unreachable candidate...)


ACTIVE_RUNS = (RunStatus.QUEUED, RunStatus.RUNNING)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON, list[str]: JSON, datetime: UtcDateTime}


class Organisation(Base):
    __tablename__ = "organisations"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=now)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=now)
    organisation: Mapped[Organisation | None] = relationship()


class ApiToken(Base):
    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=now)
    user: Mapped[User] = relationship()


class LoginAttempt(Base):
    __tablename__ = "login_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    client: Mapped[str] = mapped_column(String(100), default="")
    succeeded: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(default=now, index=True)


class Candidate(Base):
    __tablename__ = "candidates"
    __table_args__ = (UniqueConstraint("organisation_id", "name", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100))
    vendor: Mapped[str] = mapped_column(String(200), default="")
    mode: Mapped[str] = mapped_column(String(20))
    driver_url: Mapped[str | None] = mapped_column(String(500))
    certificates: Mapped[str] = mapped_column(Text, default="")  # PEM, the certificates it presents
    #: set when an official session used it: the version can no longer change
    frozen: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=now)
    organisation: Mapped[Organisation] = relationship()


class Session(Base):
    __tablename__ = "sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=SessionStatus.OPEN)
    title: Mapped[str] = mapped_column(String(300), default="")
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id"))
    campaign: Mapped[str] = mapped_column(String(300))
    #: what an official or rehearsal session froze (campaign, harness, simulators, data set, candidate)
    frozen: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=now)
    submitted_at: Mapped[datetime | None] = mapped_column()
    locked_at: Mapped[datetime | None] = mapped_column()
    pv_sha256: Mapped[str | None] = mapped_column(String(64))
    candidate: Mapped[Candidate] = relationship()
    created_by: Mapped[User] = relationship(foreign_keys=[created_by_id])
    reviewer: Mapped[User | None] = relationship(foreign_keys=[reviewer_id])
    runs: Mapped[list[Run]] = relationship(back_populates="session", order_by="Run.id")


class Run(Base):
    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"), index=True)
    campaign: Mapped[str] = mapped_column(String(300))
    case_ids: Mapped[list[str] | None] = mapped_column(JSON)
    defects: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(20), default=RunStatus.QUEUED, index=True)
    verdict: Mapped[str | None] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(Text, default="")
    harness_run_id: Mapped[str | None] = mapped_column(String(100))
    folder: Mapped[str | None] = mapped_column(String(500))
    cases_total: Mapped[int] = mapped_column(Integer, default=0)
    cases_done: Mapped[int] = mapped_column(Integer, default=0)
    current_case: Mapped[str | None] = mapped_column(String(200))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    worker: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None] = mapped_column()
    requested_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(Text, default="")  # why a reviewer asked for it (a re-run)
    queued_at: Mapped[datetime] = mapped_column(default=now)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    reviewed_bundle_sha256: Mapped[str | None] = mapped_column(String(64))
    #: operator mode: what the run asks the person now ({"question", "context"}), and their answer
    prompt: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    answer: Mapped[str | None] = mapped_column(Text)
    session: Mapped[Session] = relationship(back_populates="runs")
    cases: Mapped[list[CaseResult]] = relationship(back_populates="run", order_by="CaseResult.position")


class CaseResult(Base):
    """A case's harness verdict in one run, as the run progresses and from its report."""

    __tablename__ = "case_results"
    __table_args__ = (UniqueConstraint("run_id", "case_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    case_id: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(500), default="")
    verdict: Mapped[str | None] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    requirements: Mapped[list[str]] = mapped_column(JSON, default=list)
    attestation: Mapped[bool] = mapped_column(Boolean, default=False)  # has steps only a person can confirm
    run: Mapped[Run] = relationship(back_populates="cases")


class ReviewEntry(Base):
    """A reviewer's comment or verdict on a case of a run; the record itself is in the run's evidence chain."""

    __tablename__ = "review_entries"
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"), index=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    case_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))  # comment | verdict
    verdict: Mapped[str | None] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=now)
    evidence_seq: Mapped[int] = mapped_column(Integer)
    evidence_digest: Mapped[str] = mapped_column(String(64))
    user: Mapped[User] = relationship()


class AuditEvent(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=now, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str] = mapped_column(String(200), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    user: Mapped[User | None] = relationship()
