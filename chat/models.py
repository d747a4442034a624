import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from reports.models import Movie


class Conversation(models.Model):
    """A chat about one film, or about all films when `movie` is empty. Owned by a user or an anonymous session."""

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    movie = models.ForeignKey(Movie, null=True, blank=True, on_delete=models.CASCADE, related_name="conversations")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="conversations",
    )
    session_key = models.CharField(max_length=64, blank=True, db_index=True)
    title = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self) -> str:
        return self.title or str(self.uuid)


class MessageQuerySet(models.QuerySet["Message"]):
    """The life of an assistant message, each transition one UPDATE guarded by the states it starts from:
    pending → streaming (claim) → complete or stopped (finish), failed (fail, expire); pending or streaming →
    stopped (stop); pending → failed (expire_unopened). Each returns the number of messages whose status it
    changed."""

    def claim(self, *, asked_since: datetime | None = None) -> int:
        """pending → streaming: the stream that gets 1 writes the answer; any other follows it. `asked_since`: only
        an answer asked since then (an older one is left to expire_unopened)."""
        pending = self.filter(status=Message.Status.PENDING)
        if asked_since is not None:
            pending = pending.filter(created_at__gte=asked_since)
        return pending.update(status=Message.Status.STREAMING)

    def expire_unopened(self, *, asked_before: datetime) -> int:
        """pending → failed (code `expired`) for answers asked before `asked_before` whose stream nobody opened."""
        return self.filter(status=Message.Status.PENDING, created_at__lt=asked_before).update(
            status=Message.Status.FAILED,
            error_code="expired",
            error_text="This answer was never opened, so it was not written. Please ask again.",
            retryable=True,
            finished_at=timezone.now(),
        )

    def stop(self) -> int:
        """pending or streaming → stopped (the stop endpoint): the writer notices and closes its upstream."""
        return self.filter(status__in=Message.OPEN).update(status=Message.Status.STOPPED, finished_at=timezone.now())

    def finish(self, *, status: str, **fields: Any) -> int:
        """The writer's end, `complete` or `stopped` (its client left), with the answer's final fields. A message
        the stop endpoint ended first stays `stopped` and still gets them (the text written until then)."""
        if status not in (Message.Status.COMPLETE, Message.Status.STOPPED):
            raise ValueError(f"finish() ends in complete or stopped, not {status!r}")
        return self._end(status, fields)

    def fail(self, *, code: str, text: str, retryable: bool, retry_after: float | None = None, **fields: Any) -> int:
        """The writer's end when the answer failed (upstream error, internal error), with the partial text."""
        error = {"error_code": code, "error_text": text, "retryable": retryable, "retry_after": retry_after}
        return self._end(Message.Status.FAILED, {**fields, **error})

    def expire(self) -> int:
        """streaming → failed, for a message whose writer died (a restart mid-answer): nobody else will end it."""
        return self.filter(status=Message.Status.STREAMING).update(
            status=Message.Status.FAILED,
            error_code="stream_interrupted",
            error_text="The answer was interrupted. Please try again.",
            retryable=True,
            finished_at=timezone.now(),
        )

    def _end(self, status: str, fields: dict[str, Any]) -> int:
        fields = {"finished_at": timezone.now(), **fields}
        ended = self.filter(status__in=Message.OPEN).update(status=status, **fields)
        if not ended:
            self.update(**fields)
        return ended


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    class Status(models.TextChoices):  # labels: the names, capitalised
        PENDING = "pending"
        STREAMING = "streaming"
        COMPLETE = "complete"
        FAILED = "failed"
        STOPPED = "stopped"

    OPEN = (Status.PENDING, Status.STREAMING)
    TERMINAL = (Status.COMPLETE, Status.FAILED, Status.STOPPED)

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    # An assistant message answers one user message; a regenerated answer points at the answer it replaces.
    reply_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="replies")
    regenerated_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="regenerations"
    )
    cached = models.BooleanField(default=False)
    role = models.CharField(max_length=10, choices=Role.choices)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.COMPLETE)
    cited_section_ids = models.JSONField(default=list, blank=True)
    source_section_ids = models.JSONField(default=list, blank=True)
    error_code = models.CharField(max_length=40, blank=True)
    error_text = models.TextField(blank=True)
    # Whether asking again can help (a timeout, an overloaded upstream), and after how many seconds when it said.
    retryable = models.BooleanField(default=False)
    retry_after = models.FloatField(null=True, blank=True)
    provider = models.CharField(max_length=40, blank=True)
    model = models.CharField(max_length=200, blank=True)
    timings = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Refreshed by streams that follow the answer while another one writes it (a reloaded page, a second tab): the
    # writer keeps going while someone watches, and stops once nobody does.
    watched_at = models.DateTimeField(null=True, blank=True)

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["conversation", "created_at"])]

    def __str__(self) -> str:
        return f"{self.role}: {self.content[:40]}"

    @property
    def is_finished(self) -> bool:
        return self.status in self.TERMINAL


class RateCounter(models.Model):
    """Requests counted per key (user, session or IP; failed logins per account or IP; sign-ups per IP) in a fixed
    window, in the database so that every process sees the same counts."""

    key = models.CharField(max_length=200, primary_key=True)
    window_start = models.DateTimeField()
    # Windows differ in length by limit; the end tells `prune` when a row is spent (null: written before it was kept).
    window_end = models.DateTimeField(null=True)
    count = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.key}: {self.count} since {self.window_start:%H:%M:%S}"
