"""The life of an assistant message: each status transition of the Message QuerySet, against the real database."""

import importlib

import pytest
from django.apps import apps

from chat.models import Conversation, Message


def answer(status: str, **fields: object) -> Message:
    conversation = Conversation.objects.create(session_key="lifecycle", title="Lifecycle")
    question = Message.objects.create(conversation=conversation, role="user", content="Who directed it?")
    return Message.objects.create(
        conversation=conversation, role="assistant", reply_to=question, status=status, **fields
    )


def transition(message: Message, name: str, **kwargs: object) -> tuple[int, Message]:
    changed = getattr(Message.objects.filter(pk=message.pk), name)(**kwargs)
    message.refresh_from_db()
    return changed, message


def test_claim_takes_a_pending_answer_once(db):
    message = answer("pending")
    assert transition(message, "claim") == (1, message)
    assert message.status == "streaming"
    assert transition(message, "claim")[0] == 0  # a second stream follows instead


@pytest.mark.parametrize("status", ["complete", "failed", "stopped"])
def test_claim_leaves_an_ended_answer_alone(db, status):
    changed, message = transition(answer(status), "claim")
    assert (changed, message.status) == (0, status)


@pytest.mark.parametrize("status", ["pending", "streaming"])
def test_stop_ends_an_open_answer(db, status):
    changed, message = transition(answer(status, content="So far"), "stop")
    assert (changed, message.status, message.content) == (1, "stopped", "So far")
    assert message.finished_at is not None


def test_stop_leaves_a_finished_answer_as_it_is(db):
    changed, message = transition(answer("complete", content="Done."), "stop")
    assert (changed, message.status, message.finished_at) == (0, "complete", None)


def test_finish_writes_the_answer_and_its_status(db):
    changed, message = transition(
        answer("streaming"), "finish", status="complete", content="Hitchcock [3].", cited_section_ids=[3], model="m"
    )
    assert changed == 1
    assert (message.status, message.content, message.cited_section_ids, message.model) == (
        "complete",
        "Hitchcock [3].",
        [3],
        "m",
    )
    assert message.finished_at is not None


def test_finish_keeps_an_answer_the_stop_endpoint_ended_stopped_with_its_text(db):
    changed, message = transition(answer("stopped"), "finish", status="complete", content="Half an answer")
    assert (changed, message.status, message.content) == (0, "stopped", "Half an answer")


def test_finish_does_not_fail_an_answer(db):
    with pytest.raises(ValueError, match="complete or stopped"):
        Message.objects.filter(pk=answer("streaming").pk).finish(status="failed")


def test_fail_writes_the_error_and_the_partial_text(db):
    changed, message = transition(
        answer("streaming"),
        "fail",
        code="rate_limited",
        text="Try again in 7 s.",
        retryable=True,
        retry_after=7.0,
        content="Par",
    )
    assert changed == 1
    assert (message.status, message.content, message.error_code, message.error_text) == (
        "failed",
        "Par",
        "rate_limited",
        "Try again in 7 s.",
    )
    assert (message.retryable, message.retry_after, message.timings) == (True, 7.0, {})
    assert message.finished_at is not None


def test_expire_fails_a_streaming_answer_whose_writer_died(db):
    changed, message = transition(answer("streaming", content="half an ans"), "expire")
    assert changed == 1
    assert (message.status, message.content, message.error_code, message.retryable) == (
        "failed",
        "half an ans",
        "stream_interrupted",
        True,
    )


def test_expire_leaves_a_pending_answer_alone(db):
    changed, message = transition(answer("pending"), "expire")
    assert (changed, message.status) == (0, "pending")


def test_the_migration_moves_retryable_out_of_the_timings(db):
    migration = importlib.import_module("chat.migrations.0004_message_retryable")
    old = answer("failed", error_code="timeout", timings={"total_ms": 5.0, "retryable": True, "retry_after": 3})
    untouched = answer("complete", timings={"total_ms": 1.0})
    migration.move_out_of_timings(apps, None)
    old.refresh_from_db()
    untouched.refresh_from_db()
    assert (old.retryable, old.retry_after, old.timings) == (True, 3.0, {"total_ms": 5.0})
    assert (untouched.retryable, untouched.retry_after, untouched.timings) == (False, None, {"total_ms": 1.0})


def test_expire_unopened_fails_a_pending_answer_asked_before_the_limit(db):
    from datetime import timedelta

    from django.utils import timezone

    message = answer("pending")
    changed, message = transition(message, "expire_unopened", asked_before=message.created_at)
    assert (changed, message.status) == (0, "pending")  # asked at that instant, not before
    changed, message = transition(message, "expire_unopened", asked_before=message.created_at + timedelta(seconds=1))
    assert changed == 1
    assert (message.status, message.error_code, message.retryable) == ("failed", "expired", True)
    assert message.finished_at is not None and message.finished_at <= timezone.now()


@pytest.mark.parametrize("status", ["streaming", "complete", "stopped"])
def test_expire_unopened_leaves_an_answer_that_is_not_pending_alone(db, status):
    from datetime import timedelta

    message = answer(status)
    changed, message = transition(message, "expire_unopened", asked_before=message.created_at + timedelta(hours=1))
    assert (changed, message.status) == (0, status)


def test_claim_with_asked_since_leaves_an_older_pending_answer_to_expire(db):
    from datetime import timedelta

    message = answer("pending")
    changed, message = transition(message, "claim", asked_since=message.created_at + timedelta(seconds=1))
    assert (changed, message.status) == (0, "pending")
    changed, message = transition(message, "claim", asked_since=message.created_at)
    assert (changed, message.status) == (1, "streaming")
