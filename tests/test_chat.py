"""Chat turns through the real parts: uvicorn serving the ASGI app on loopback, the embedded PostgreSQL, the real
embedder, and a real HTTP server speaking OpenRouter's streaming format."""

import asyncio
import logging
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test import RequestFactory

from chat import views
from chat.models import Conversation, Message
from chat.sessions import SessionStore
from reports.models import MovieSection
from tests.live import iter_events, read_stream


def ask(web: httpx.Client, question: str, *, slug: str | None = "vertigo", **extra: str) -> httpx.Response:
    url = f"/movies/{slug}/chat/" if slug else "/chat/"
    return web.post(url, data={"question": question, **extra})


def ask_and_read(web: httpx.Client, question: str, **kwargs: str):
    started = ask(web, question, **kwargs)
    assert started.status_code == 201, started.text
    response, raw, events = read_stream(web, started.json()["stream"])
    return started.json(), response, raw, events


def committed(work: Callable[[], object]) -> None:
    """Run ORM work on a connection of its own, committed at once (the test's own connection never commits)."""
    from django.db import connection

    def run() -> None:
        try:
            work()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


def message_of(payload: dict) -> Message:
    return Message.objects.get(uuid=payload["message"])


def wait_for(condition: Callable[[], bool], *, timeout: float = 10) -> bool:
    """Whether `condition` came true within `timeout` seconds (a deadline to fail by, not a measurement)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_an_offline_answer_streams_as_sse_and_is_saved_complete(web):
    payload, response, raw, events = ask_and_read(web, "Who directed Vertigo?")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert raw.startswith(b"retry: 2000\n\n: flickora\n\n")
    names = [event.event for event in events]
    assert names[0] == "sources" and names[-1] == "done"
    assert set(names[1:-1]) == {"token"}
    sections = set(MovieSection.objects.filter(movie__slug="vertigo").values_list("pk", flat=True))
    assert {source["id"] for source in events[0].data["sources"]} == sections
    text = "".join(event.data["t"] for event in events if event.event == "token")
    assert [int(event.id) for event in events if event.event == "token"][-1] == len(text)
    message = message_of(payload)
    assert (message.status, message.content, message.provider) == ("complete", text, "offline")
    assert "No language model is configured" in text
    assert "Alfred Hitchcock" in text
    done = events[-1].data
    assert (done["status"], done["message"], done["cached"]) == ("complete", payload["message"], False)
    assert [citation["id"] for citation in done["citations"]] == message.cited_section_ids
    assert message.cited_section_ids and set(message.cited_section_ids) <= sections
    assert 'class="cite"' in done["html"]


def test_an_llm_answer_streams_token_by_token_with_checked_citations(web, llm):
    section = MovieSection.objects.filter(movie__slug="vertigo").first()
    tokens = ["Vertigo ", "was directed ", "by Alfred Hitchcock ", f"[{section.pk}]", " [999999]."]
    llm.set_scenario("scripted", tokens=tokens, delay=0.01)
    payload, _, _, events = ask_and_read(web, "Who directed it?")
    assert [event.data["t"] for event in events if event.event == "token"] == tokens
    message = message_of(payload)
    assert (message.status, message.content) == ("complete", "".join(tokens))
    assert (message.provider, message.model) == ("openai-compatible", "test/model")
    assert message.cited_section_ids == [section.pk]
    done = events[-1].data
    assert done["citations"] == [{"id": section.pk, "url": f"/movies/vertigo/#section-{section.pk}"}]
    assert "999999" not in done["html"]
    request = llm.requests[-1]
    assert request.headers["authorization"] == "Bearer sk-or-test-secret-key-0000"
    assert request.body["stream"] is True
    prompt = "\n".join(m["content"] for m in request.body["messages"])
    assert f"[{section.pk}]" in prompt
    assert "Who directed it?" in prompt


@pytest.mark.parametrize(
    ("scenario", "params", "text"),
    [
        ("ok", {"tokens": ["Plain ", "answer."]}, "Plain answer."),
        ("split_utf8", {"tokens": ["Le café ", "à 日本 ", "🎬"]}, "Le café à 日本 🎬"),
        ("crlf", {"tokens": ["Windows ", "lines."]}, "Windows lines."),
        ("empty_choices_usage", {"tokens": ["With ", "usage."]}, "With usage."),
    ],
)
def test_valid_upstream_streams_give_a_complete_answer(web, llm, scenario, params, text):
    llm.set_scenario(scenario, **params)
    payload, _, _, events = ask_and_read(web, f"Tell me about Vertigo ({scenario})")
    assert events[-1].event == "done"
    assert "".join(e.data["t"] for e in events if e.event == "token") == text
    assert (message_of(payload).status, message_of(payload).content) == ("complete", text)


@pytest.mark.parametrize(
    ("scenario", "params", "code", "retryable", "partial"),
    [
        ("status_401", {}, "unauthorized", False, ""),
        ("status_402", {}, "payment_required", False, ""),
        ("status_429", {}, "rate_limited", True, ""),
        ("status_500", {}, "upstream_error", True, ""),
        ("status_503", {}, "upstream_unavailable", True, ""),
        ("hang_after_headers", {"tokens_before": 1}, "timeout", True, "token0 "),
        (
            "reset_mid_stream",
            {"tokens": ["one ", "two ", "three ", "four"], "after": 2},
            "stream_interrupted",
            True,
            "one two ",
        ),
        ("error_chunk_after_tokens", {"tokens": ["so ", "far "], "after": 2}, "upstream_error", True, "so far "),
        ("no_done", {"tokens": ["cut ", "off"]}, "stream_interrupted", True, "cut off"),
    ],
)
def test_each_upstream_fault_gives_an_error_event_and_a_failed_message(
    web, llm, scenario, params, code, retryable, partial
):
    if scenario == "hang_after_headers":
        params = {**params, "tokens": ["token0 ", "token1 "]}
    llm.set_scenario(scenario, **params)
    payload, _, _, events = ask_and_read(web, f"Fault {scenario}?")
    assert [e.event for e in events][0] == "sources"
    error = events[-1]
    assert error.event == "error"
    assert error.data["status"] == "failed"
    assert (error.data["error"]["code"], error.data["error"]["retryable"]) == (code, retryable)
    assert error.data["error"]["message"]
    if scenario == "status_429":
        assert error.data["error"]["retry_after"] == 7
    message = message_of(payload)
    assert (message.status, message.error_code, message.content) == ("failed", code, partial)
    # The next request is served normally.
    llm.set_scenario("ok", tokens=["Back ", "to normal."])
    payload, _, _, events = ask_and_read(web, "And now?")
    assert events[-1].event == "done"
    assert message_of(payload).content == "Back to normal."


def test_a_connect_timeout_is_a_retryable_error(web, llm, settings):
    llm.set_scenario("connect_timeout")
    settings.LLM_BASE_URL = llm.base_url
    settings.LLM_CONNECT_TIMEOUT = 0.5
    payload, _, _, events = ask_and_read(web, "Anyone there?")
    assert events[-1].event == "error"
    assert (events[-1].data["error"]["code"], events[-1].data["error"]["retryable"]) == ("timeout", True)
    assert message_of(payload).status == "failed"


def test_a_client_that_leaves_stops_the_message_and_closes_the_upstream_request(web, llm):
    llm.set_scenario("bench", n=200, tokens_per_second=20)
    started = ask(web, "Tell me everything about Vertigo").json()
    with web.stream("GET", started["stream"]) as response:
        tokens = 0
        for event in iter_events(response):
            tokens += event.event == "token"
            if tokens == 3:
                break
    closed = llm.wait_for_closed_early(timeout=10)
    assert closed is not None and closed.tokens_sent < 200  # closed by us, not at the end of the answer
    assert wait_for(lambda: message_of(started).status == "stopped")
    message = message_of(started)
    assert message.content.startswith(" tok0 tok1 tok2")
    assert message.finished_at is not None


def test_deleting_the_conversation_ends_every_stream_of_its_answer_and_closes_the_upstream(web, llm, caplog):
    llm.set_scenario("bench", n=200, tokens_per_second=20)
    started = ask(web, "Tell me everything there is about Vertigo").json()
    follower_events: list = []
    following = threading.Event()

    def follow() -> None:
        with httpx.Client(base_url=web.base_url, cookies=web.cookies, timeout=30) as tab:
            with tab.stream("GET", started["stream"]) as response:
                for event in iter_events(response):
                    follower_events.append(event)
                    following.set()

    follower = threading.Thread(target=follow)
    events = []
    with web.stream("GET", started["stream"]) as response:
        for event in iter_events(response):
            events.append(event)
            if event.event == "token" and not follower.is_alive() and not follower_events:
                follower.start()
                assert following.wait(10)
                deleted = web.post(f"/chat/conversations/{started['conversation']}/delete/")
                assert deleted.status_code == 302
    follower.join(10)
    gone = {"code": "deleted", "message": "This conversation was deleted, so its answer stopped.", "retryable": False}
    for stream in (events, follower_events):
        assert stream[-1].event == "error"
        assert stream[-1].data == {
            "message": started["message"],
            "status": "failed",
            "error": {**gone, "retry_after": None},
        }
    closed = llm.wait_for_closed_early(timeout=10)
    assert closed is not None and closed.tokens_sent < 200
    assert not Message.objects.filter(uuid=started["message"]).exists()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_the_stop_endpoint_ends_the_stream_and_keeps_the_partial_text(web, llm):
    llm.set_scenario("bench", n=200, tokens_per_second=20)
    started = ask(web, "Tell me even more about Vertigo").json()
    events = []
    with web.stream("GET", started["stream"]) as response:
        for event in iter_events(response):
            events.append(event)
            if [e.event for e in events].count("token") == 3:
                stopped = web.post(started["stop"])
                assert (stopped.status_code, stopped.json()["status"]) == (200, "stopped")
    assert events[-1].event == "done"
    assert events[-1].data["status"] == "stopped"
    assert llm.wait_for_closed_early(timeout=3) is not None
    message = message_of(started)
    assert message.status == "stopped"
    assert message.content == "".join(e.data["t"] for e in events if e.event == "token")


def test_a_reconnect_with_last_event_id_replays_the_rest_and_done(web, llm):
    llm.set_scenario("scripted", tokens=["Alpha ", "beta ", "gamma."])
    payload, _, _, events = ask_and_read(web, "Replay me")
    _, _, replay = read_stream(web, payload["stream"], headers={"Last-Event-ID": "6"})
    assert [e.event for e in replay] == ["sources", "token", "done"]
    assert (replay[1].data["t"], replay[1].id) == ("beta gamma.", "17")
    assert replay[2].data["html"] == events[-1].data["html"]
    assert len(llm.requests) == 1


def test_a_second_stream_of_a_message_in_progress_follows_it_to_the_end(web, llm):
    llm.set_scenario("scripted", tokens=[f"w{n} " for n in range(12)], delay=0.1)
    started = ask(web, "Follow me").json()
    with web.stream("GET", started["stream"]) as first:
        iterator = iter_events(first)
        assert next(iterator).event == "sources"
        _, _, follower = read_stream(web, started["stream"])
        rest = list(iterator)
    assert follower[-1].event == "done"
    assert "".join(e.data["t"] for e in follower if e.event == "token") == "".join(f"w{n} " for n in range(12))
    assert rest[-1].event == "done"
    assert len(llm.requests) == 1


def test_regenerate_makes_a_new_answer_to_the_same_question(web, llm, settings):
    settings.RESPONSE_CACHE_TTL = 3600
    llm.set_scenario("scripted", tokens=["First."])
    first, _, _, _ = ask_and_read(web, "Regenerate this answer please")
    llm.set_scenario("scripted", tokens=["Second."])
    again = web.post(first["regenerate"])
    assert again.status_code == 201
    _, _, events = read_stream(web, again.json()["stream"])
    assert events[-1].data["cached"] is False
    new = message_of(again.json())
    assert (new.content, new.reply_to_id, new.regenerated_from.uuid.hex) == (
        "Second.",
        message_of(first).reply_to_id,
        message_of(first).uuid.hex,
    )
    assert len(llm.requests) == 2


def test_the_same_first_question_is_answered_from_the_cache(web, llm, settings):
    settings.RESPONSE_CACHE_TTL = 3600
    llm.set_scenario("scripted", tokens=["Cached ", "answer."])
    ask_and_read(web, "What is the cached question about Vertigo?")
    payload, _, _, events = ask_and_read(web, "what is the cached  question about vertigo?")
    assert events[-1].data["cached"] is True
    assert "".join(e.data["t"] for e in events if e.event == "token") == "Cached answer."
    assert (message_of(payload).cached, message_of(payload).status) == (True, "complete")
    assert len(llm.requests) == 1


def test_follow_up_history_goes_to_the_llm(web, llm):
    llm.set_scenario("scripted", tokens=["It is a 1958 film."])
    first, _, _, _ = ask_and_read(web, "Tell me about Vertigo")
    llm.set_scenario("scripted", tokens=["Alfred Hitchcock."])
    ask_and_read(web, "and who directed it?", conversation=first["conversation"])
    condense, answer = llm.requests[-2], llm.requests[-1]
    assert "and who directed it?" in condense.body["messages"][-1]["content"]
    contents = [m["content"] for m in answer.body["messages"]]
    assert "Tell me about Vertigo" in contents
    assert "It is a 1958 film." in contents


@pytest.mark.parametrize(
    ("question", "code", "message"),
    [
        ("", "empty", "The question is empty."),
        ("   ", "empty", "The question is empty."),
        ("x" * 2001, "too_long", "The question is 2,001 characters long; the limit is 2,000."),
        ("bell\x07", "control_characters", "The question contains control characters."),
    ],
)
def test_a_bad_question_is_a_400_naming_the_problem(web, question, code, message):
    response = ask(web, question)
    assert response.status_code == 400
    assert response.json() == {"error": {"code": code, "message": message}}


def test_a_question_of_exactly_2000_characters_is_accepted(web):
    assert ask(web, "y" * 2000).status_code == 201


def test_an_unknown_film_is_a_404(web):
    response = ask(web, "Hello?", slug="no-such-film")
    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")


def test_a_post_without_the_csrf_token_is_refused(web):
    del web.headers["X-CSRFToken"]
    assert ask(web, "Hello?").status_code == 403


def test_the_rate_limit_answers_429_with_retry_after(web, settings):
    settings.RATE_LIMIT_REQUESTS = 2
    settings.RATE_LIMIT_WINDOW = 3600
    web.get("/")  # a fresh session of its own: counts start at zero
    assert [ask(web, f"Question {n}").status_code for n in range(2)] == [201, 201]
    refused = ask(web, "One too many")
    assert refused.status_code == 429
    assert 0 < int(refused.headers["retry-after"]) <= 3600
    assert refused.json()["error"]["code"] == "rate_limited"


def test_another_sessions_conversation_and_messages_are_404(web, live_server_asgi):
    payload, _, _, _ = ask_and_read(web, "Mine")
    with httpx.Client(base_url=live_server_asgi.url) as stranger:
        stranger.get("/")
        stranger.headers["X-CSRFToken"] = stranger.cookies["csrftoken"]
        assert stranger.get(payload["stream"]).status_code == 404
        assert stranger.post(payload["stop"]).status_code == 404
        assert stranger.post(payload["regenerate"]).status_code == 404
        assert stranger.get(f"/chat/conversations/{payload['conversation']}/").status_code == 404
        other = stranger.post("/movies/vertigo/chat/", data={"question": "x", "conversation": payload["conversation"]})
        assert other.status_code == 404
    assert web.get(f"/chat/conversations/{payload['conversation']}/").status_code == 200


def test_html_in_questions_and_answers_is_inert(web, llm):
    llm.set_scenario("scripted", tokens=["<script>alert(1)</script>", "<img src=x onerror=alert(2)> **bold**"])
    payload, _, _, events = ask_and_read(web, "<script>alert(3)</script>")
    html = events[-1].data["html"]
    tags = tags_and_attributes(html)
    assert [tag for tag, _ in tags] == ["p", "strong"]
    assert all(not name.startswith("on") for _, attributes in tags for name in attributes)
    assert html == (
        "<p>&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt; <strong>bold</strong></p>"
    )
    conversation = web.get(f"/chat/conversations/{payload['conversation']}/").json()
    assert conversation["messages"][0]["content"] == "<script>alert(3)</script>"


def tags_and_attributes(html: str) -> list[tuple[str, list[str]]]:
    from html.parser import HTMLParser

    found: list[tuple[str, list[str]]] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list) -> None:
            found.append((tag, [name for name, _ in attrs]))

    Collector().feed(html)
    return found


def test_the_api_key_appears_in_no_log_line_event_or_page(web, llm, caplog):
    llm.set_scenario("status_401", message="Invalid key sk-or-test-secret-key-0000")
    with caplog.at_level(logging.DEBUG):
        payload, _, raw, _ = ask_and_read(web, "Leak check")
    assert b"sk-or-test-secret-key-0000" not in raw
    assert "sk-or-test-secret-key-0000" not in caplog.text
    assert "sk-or-test-secret-key-0000" not in message_of(payload).error_text
    assert "sk-or-test-secret-key-0000" not in web.get("/movies/vertigo/").text


def test_each_turn_logs_one_timing_line(web, llm, caplog):
    llm.set_scenario("scripted", tokens=["Timed."])
    with caplog.at_level(logging.INFO, logger="chat.writer"):
        payload, _, _, _ = ask_and_read(web, "Time this turn")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("chat turn")]
    assert len(lines) == 1
    assert f"message={payload['message']} status=complete provider=openai-compatible model=test/model" in lines[0]
    for name in ("embed_ms=", "search_ms=", "upstream_ms=", "first_token_ms=", "total_ms="):
        assert name in lines[0]


def test_pings_keep_a_quiet_stream_alive(web, llm, settings):
    settings.SSE_PING_SECONDS = 0.2
    llm.set_scenario("scripted", tokens=["slow ", "answer"], delay=0.7)
    _, _, raw, events = ask_and_read(web, "Take your time")
    assert b": ping\n\n" in raw
    assert events[-1].event == "done"


def test_the_all_films_chat_cites_several_films(web):
    payload, _, _, events = ask_and_read(web, "a film about a samurai or a detective", slug=None)
    films = {source["slug"] for source in events[0].data["sources"]}
    assert len(films) >= 2
    assert Conversation.objects.get(uuid=payload["conversation"]).movie is None
    assert events[-1].data["status"] == "complete"


def test_stop_ends_a_stream_whose_upstream_is_silent(web, llm, settings):
    settings.LLM_TIMEOUT = 60  # only the stop can end this answer within the test
    llm.set_scenario("hang_after_headers", tokens=["first ", "never"], tokens_before=1)
    started = ask(web, "Wait for it").json()
    events = []
    with web.stream("GET", started["stream"]) as response:
        for event in iter_events(response):
            events.append(event)
            if event.event == "token":
                assert web.post(started["stop"]).json()["status"] == "stopped"
    assert (events[-1].event, events[-1].data["status"]) == ("done", "stopped")
    assert llm.wait_for_closed_early(timeout=10) is not None
    message = message_of(started)
    assert (message.status, message.content, message.error_code) == ("stopped", "first ", "")


def test_a_follower_fails_a_message_whose_writer_died(web, settings):
    settings.LLM_TIMEOUT = -29.5  # a writer silent for half a second counts as gone
    payload = ask(web, "Orphaned").json()
    # As a writer that died would leave it (committed, outside this test's transaction).
    committed(lambda: Message.objects.filter(uuid=payload["message"]).update(status="streaming", content="half an ans"))
    _, _, events = read_stream(web, payload["stream"])
    assert [e.event for e in events] == ["token", "error"]
    assert (events[-1].data["error"]["code"], events[-1].data["error"]["retryable"]) == ("stream_interrupted", True)
    message = message_of(payload)
    assert (message.status, message.content) == ("failed", "half an ans")


def test_a_reload_that_reconnects_in_time_keeps_the_answer_going(web, llm):
    llm.set_scenario("scripted", tokens=[f"part{n} " for n in range(20)], delay=0.05)
    started = ask(web, "Survive a reload").json()
    with web.stream("GET", started["stream"]) as response:
        shown = ""
        for event in iter_events(response):
            if event.event == "token":
                shown += event.data["t"]
                if len(shown) > 10:
                    break
    # The reloaded page opens the stream again from what it had shown.
    _, _, events = read_stream(web, started["stream"] + f"?from={len(shown)}")
    assert (events[-1].event, events[-1].data["status"]) == ("done", "complete")
    rest = "".join(e.data["t"] for e in events if e.event == "token")
    assert shown + rest == "".join(f"part{n} " for n in range(20))
    assert message_of(started).status == "complete"
    assert llm.closed_early == []


def test_more_streams_than_pooled_connections_are_all_served(web, llm, settings):
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    pool_size = connection.settings_dict["OPTIONS"]["pool"]["max_size"]
    llm.set_scenario("bench", n=20, tokens_per_second=20)
    started = [ask(web, f"Concurrent question {n}").json() for n in range(pool_size + 5)]
    with ThreadPoolExecutor(len(started)) as pool:
        results = list(pool.map(lambda payload: read_stream(web, payload["stream"]), started))
    assert [response.status_code for response, _, _ in results] == [200] * len(started)
    assert [events[-1].data["status"] for _, _, events in results] == ["complete"] * len(started)


def test_one_watch_round_saves_the_texts_and_finds_the_answers_to_stop(web):
    from django.db import connection
    from django.db.models.functions import Now
    from django.test.utils import CaptureQueriesContext

    from chat.watch import watch_round

    pks = [message_of(ask(web, f"Watched question {n}").json()).pk for n in range(4)]
    # 0, 1: streaming and followed just now; 2: ended by the stop endpoint; 3: streaming, followed by nobody;
    # 4: deleted (a message id no row has).
    committed(lambda: Message.objects.filter(pk__in=pks).update(status="streaming", watched_at=Now()))
    committed(lambda: Message.objects.filter(pk=pks[2]).update(status="stopped", content="kept"))
    committed(lambda: Message.objects.filter(pk=pks[3]).update(watched_at=None))
    result: dict[str, object] = {}

    def one_round() -> None:
        with CaptureQueriesContext(connection) as queries:
            texts = [(pks[0], "zero so far"), (pks[2], "too late"), (pks[3], "three")]
            result["stop"] = watch_round([*pks, max(pks) + 1000], texts, [pks[1], pks[3]], 30.0)
        result["queries"] = len(queries)

    committed(one_round)
    assert result == {"stop": {pks[2]: False, pks[3]: False, max(pks) + 1000: True}, "queries": 2}
    contents = dict(Message.objects.filter(pk__in=pks).values_list("pk", "content"))
    assert [contents[pk] for pk in pks] == ["zero so far", "", "kept", "three"]


def test_the_growing_answer_is_saved_while_it_streams(web, llm):
    llm.set_scenario("bench", n=400, tokens_per_second=20)
    started = ask(web, "Save it as you go").json()
    with web.stream("GET", started["stream"]) as response:
        events = iter_events(response)
        assert next(events).event == "sources"
        assert wait_for(lambda: bool(message_of(started).content))  # saved before the answer ends
        saved = message_of(started)
    count = saved.content.count("tok")
    assert saved.status == "streaming"
    assert saved.content == "".join(f" tok{n}" for n in range(count))
    assert llm.wait_for_closed_early(timeout=3) is not None  # nobody follows: it stops


def test_stopping_one_of_several_streams_stops_that_one_only(web, llm):
    from concurrent.futures import ThreadPoolExecutor

    llm.set_scenario("bench", n=40, tokens_per_second=20)
    started = [ask(web, f"Side by side {n}").json() for n in range(3)]
    with ThreadPoolExecutor(len(started)) as pool:
        streams = [pool.submit(read_stream, web, payload["stream"]) for payload in started]
        assert wait_for(lambda: bool(message_of(started[1]).content))
        assert web.post(started[1]["stop"]).json()["status"] == "stopped"
        results = [stream.result() for stream in streams]
    assert [events[-1].data["status"] for _, _, events in results] == ["complete", "stopped", "complete"]
    assert [message_of(payload).status for payload in started] == ["complete", "stopped", "complete"]
    assert len(llm.closed_early) == 1


@pytest.mark.django_db(transaction=True)
def test_the_stream_view_gives_its_database_connection_back_before_the_stream_is_sent():
    """Under Django's own handler (WEB_THREADS=0) a request keeps its connection until its response ends, which for a
    stream is minutes: the view gives it back itself once it has found the message."""
    key = "streamer" * 4
    conversation = Conversation.objects.create(session_key=key, title="Connection")
    question = Message.objects.create(conversation=conversation, role=Message.Role.USER, content="Who?")
    answer = Message.objects.create(
        conversation=conversation, role=Message.Role.ASSISTANT, status=Message.Status.PENDING, reply_to=question
    )
    request = RequestFactory().get(f"/chat/messages/{answer.uuid}/stream/")
    request.session, request.user = SessionStore(key), AnonymousUser()
    assert connection.connection is not None
    response = views.stream(request, answer.uuid)
    assert (response.status_code, response["Content-Type"]) == (200, "text/event-stream")
    assert connection.connection is None  # back in the pool
    asyncio.run(response.streaming_content.aclose())  # never sent: the message stays pending
    assert Message.objects.get(pk=answer.pk).status == Message.Status.PENDING


@pytest.mark.parametrize("slug", ["vertigo", None])
def test_a_question_that_cannot_be_embedded_fails_its_answer_with_an_internal_error(web, llm, monkeypatch, slug):
    """The search fails (here the question encoder) on whichever thread embeds the question: the stream ends with
    an error event, the answer is saved failed, the LLM is never asked, and the next question is answered."""
    from reports.embeddings import get_embedder

    def gone(keys):
        raise RuntimeError("encoder gone")

    monkeypatch.setattr(get_embedder(), "embed_queries", gone)
    payload, _, _, events = ask_and_read(web, f"Can this question be embedded ({slug})?", slug=slug)
    assert [event.event for event in events] == ["error"]
    error = events[0].data["error"]
    message = message_of(payload)
    assert (error["code"], error["retryable"], error["retry_after"]) == ("internal_error", True, None)
    assert error["message"] == "Something went wrong while answering. Please try again."
    assert (message.status, message.error_code, message.content) == ("failed", "internal_error", "")
    assert llm.requests == []
    monkeypatch.undo()
    llm.set_scenario("ok", tokens=["Answered."])
    payload, _, _, events = ask_and_read(web, f"And can this one ({slug})?", slug=slug)
    assert events[-1].event == "done"
    assert message_of(payload).content == "Answered."
