"""The pages in a real browser: Debian's Chromium driven by Playwright, against uvicorn serving the app, the embedded
PostgreSQL and the fake OpenRouter server. Each test gets its own browser (see the `browser` fixture)."""

import re
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from chat.models import Conversation, Message
from reports.models import MovieSection

pytestmark = pytest.mark.browser

STREAM_TIMEOUT = 15_000


def off_main_thread(function: Callable[[], Any]) -> Any:
    """Run database code in a worker thread. While Playwright's sync API is open the main thread has a running
    event loop, where Django refuses synchronous ORM calls; the worker's own connection sees what the live server
    committed."""
    from django.db import connections

    def run() -> Any:
        try:
            return function()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def vertigo_sections() -> list[int]:
    return off_main_thread(
        lambda: list(
            MovieSection.objects.filter(movie__slug="vertigo").order_by("position").values_list("pk", flat=True)
        )
    )


def ask(page: Page, question: str) -> Locator:
    """Type a question, send it with Enter, and return the answer that appears."""
    count = page.locator(".msg-assistant").count()
    page.get_by_label("Your question").fill(question)
    page.get_by_label("Your question").press("Enter")
    answer = page.locator(".msg-assistant").nth(count)
    expect(answer).to_be_attached()
    return answer


def message_row(answer: Locator) -> Message:
    message_id = answer.get_attribute("data-message")
    return off_main_thread(lambda: Message.objects.get(uuid=message_id))


def test_a_film_page_answer_streams_in_then_shows_the_rendered_answer(page, llm):
    sections = vertigo_sections()
    words = [f"word{n} " for n in range(24)]
    llm.set_scenario("scripted", tokens=["Vertigo is a **1958** thriller ", *words, f"[{sections[0]}]."], delay=0.08)
    page.goto("/movies/vertigo/")
    expect(page.locator(".suggestion")).to_have_count(4)
    answer = ask(page, "What is Vertigo about?")
    expect(page.locator(".msg-user .msg-text")).to_have_text("What is Vertigo about?")
    expect(answer.locator(".source")).to_have_count(len(sections))
    body = answer.locator(".msg-body")
    expect(body).to_contain_text("word2")
    expect(answer).to_have_attribute("data-status", "streaming")
    # The text grows piece by piece while it streams (waited for, not timed).
    shown = len(body.inner_text())
    page.wait_for_function("([el, n]) => el.innerText.length > n", arg=[body.element_handle(), shown])
    expect(page.locator(".chat-send")).to_be_disabled()
    expect(page.locator(".chat-stop")).to_be_visible()

    expect(answer).to_have_attribute("data-status", "complete", timeout=STREAM_TIMEOUT)
    expect(body.locator("strong")).to_have_text("1958")  # the server's HTML replaced the streamed text
    assert "**" not in body.inner_text()
    expect(page.locator(".chat-send")).to_be_enabled()
    expect(page.locator(".chat-stop")).to_be_hidden()
    assert re.search(r"\?c=[0-9a-f-]{36}$", page.url)

    # The citation opens and highlights its section of the report.
    cited = page.locator(f"#section-{sections[0]}")
    cited.locator("summary").click()
    expect(cited).not_to_have_attribute("open", "")
    cite = body.locator("a.cite")
    expect(cite).to_have_attribute("data-section", str(sections[0]))
    expect(cite).to_have_text("1")
    cite.click()
    expect(cited).to_have_attribute("open", "")
    expect(cited).to_have_class(re.compile(r"\bhighlight\b"))
    assert page.url.endswith(f"#section-{sections[0]}")
    assert "?c=" in page.url


def test_stop_ends_the_answer_and_leaves_it_stopped_on_the_server(page, llm):
    llm.set_scenario("bench", n=400, tokens_per_second=20)
    page.goto("/movies/vertigo/")
    answer = ask(page, "Tell me everything about Vertigo")
    expect(answer.locator(".msg-body")).to_contain_text("tok3")
    page.get_by_role("button", name="Stop").click()
    expect(answer).to_have_attribute("data-status", "stopped", timeout=STREAM_TIMEOUT)
    expect(answer.locator(".msg-note")).to_contain_text("Stopped")
    expect(page.locator(".chat-send")).to_be_enabled()
    expect(answer.get_by_role("button", name="Regenerate")).to_be_visible()
    assert llm.wait_for_closed_early(timeout=3) is not None  # the upstream request was closed too
    row = message_row(answer)
    assert row.status == "stopped"
    assert row.content.startswith(" tok0 tok1 tok2 tok3")
    assert answer.locator(".msg-body").inner_text().strip() == row.content.strip()


def test_html_in_a_question_and_an_answer_runs_nothing(page, llm):
    dialogs: list[str] = []
    errors: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    llm.set_scenario(
        "scripted", tokens=["<script>alert(1)</script>", " <img src=x onerror=alert(2)>", " **bold**"], delay=0.05
    )
    question = "<script>alert(3)</script><img src=x onerror=alert(4)>"
    page.goto("/movies/vertigo/")
    answer = ask(page, question)
    expect(answer).to_have_attribute("data-status", "complete", timeout=STREAM_TIMEOUT)
    for _ in range(2):  # as streamed, then as restored from the conversation after a reload
        expect(page.locator(".msg-user .msg-text")).to_have_text(question)
        body = page.locator(".msg-assistant .msg-body")
        expect(body).to_contain_text("<script>alert(1)</script> <img src=x onerror=alert(2)>")
        expect(body.locator("strong")).to_have_text("bold")
        assert page.locator("#chat img, #chat script").count() == 0
        page.wait_for_timeout(300)
        page.reload()
        expect(page.locator(".msg-assistant")).to_have_attribute("data-status", "complete")
    assert dialogs == []
    assert errors == []


def test_a_reload_after_the_answer_shows_the_conversation_again(page, llm):
    sections = vertigo_sections()
    llm.set_scenario("scripted", tokens=["First ", "answer ", f"[{sections[0]}]."])
    page.goto("/movies/vertigo/")
    answer = ask(page, "First question")
    expect(answer).to_have_attribute("data-status", "complete", timeout=STREAM_TIMEOUT)
    llm.set_scenario("scripted", tokens=["Second ", "*answer*."])
    answer = ask(page, "A follow-up")
    expect(answer).to_have_attribute("data-status", "complete", timeout=STREAM_TIMEOUT)
    html = [page.locator(".msg-assistant .msg-body").nth(n).inner_html() for n in range(2)]
    url = page.url

    page.reload()
    assert page.url == url
    expect(page.locator(".msg-user .msg-text")).to_have_text(["First question", "A follow-up"])
    expect(page.locator(".msg-assistant")).to_have_count(2)
    assert [page.locator(".msg-assistant .msg-body").nth(n).inner_html() for n in range(2)] == html
    expect(page.locator(".msg-assistant").first.locator(".source")).to_have_count(len(sections))
    expect(page.locator(".suggestion").first).to_be_hidden()
    # The next question goes on in the same conversation.
    llm.set_scenario("scripted", tokens=["Third."])
    answer = ask(page, "And a third")
    expect(answer).to_have_attribute("data-status", "complete", timeout=STREAM_TIMEOUT)
    conversation = re.search(r"\?c=([0-9a-f-]{36})", url).group(1)
    assert off_main_thread(lambda: Message.objects.filter(conversation__uuid=conversation, role="user").count()) == 3
    # A new chat starts empty, with the suggestions back.
    page.get_by_role("button", name="New chat").click()
    expect(page.locator(".msg")).to_have_count(0)
    expect(page.locator(".suggestion").first).to_be_visible()
    assert "?c=" not in page.url


def test_a_reload_during_the_stream_picks_the_answer_up_where_it_was(page, llm):
    llm.set_scenario("bench", n=60, tokens_per_second=20)
    page.goto("/movies/vertigo/")
    answer = ask(page, "Tell me a long story")
    expect(answer.locator(".msg-body")).to_contain_text("tok5")
    page.reload()
    expect(page.locator(".msg-user .msg-text")).to_have_text("Tell me a long story")
    restored = page.locator(".msg-assistant")
    # The answer went on while the page reloaded, and the reloaded page follows it to the end.
    expect(restored).to_have_attribute("data-status", "complete", timeout=STREAM_TIMEOUT)
    expect(restored.locator(".msg-body")).to_contain_text("tok59")
    row = message_row(restored)
    assert row.status == "complete"
    assert row.content == "".join(f" tok{n}" for n in range(60))
    assert llm.closed_early == []


def test_an_llm_error_shows_its_message_and_retry_answers_again(page, llm):
    llm.set_scenario("status_503")
    page.goto("/movies/vertigo/")
    answer = ask(page, "Is anyone there?")
    expect(answer).to_have_attribute("data-status", "failed", timeout=STREAM_TIMEOUT)
    error = answer.get_by_role("alert")
    expect(error).to_contain_text("The language model is unavailable right now")
    expect(error).to_have_attribute("data-code", "upstream_unavailable")
    expect(error.locator(".detail")).to_contain_text("(HTTP 503)")  # the server's own words, from `error.message`
    llm.set_scenario("scripted", tokens=["Back ", "again."])
    error.get_by_role("button", name="Retry").click()
    retried = page.locator(".msg-assistant")
    expect(retried).to_have_count(1)  # the new answer takes the failed one's place
    expect(retried).to_have_attribute("data-status", "complete", timeout=STREAM_TIMEOUT)
    expect(retried.locator(".msg-body")).to_have_text("Back again.")


def test_a_markdown_table_in_an_answer_shows_as_a_table(page, llm):
    llm.set_scenario("scripted", tokens=["Two films:\n\n", "| Film | Year |\n| --- | ---: |\n", "| Vertigo | 1958 |\n"])
    page.goto("/movies/vertigo/")
    answer = ask(page, "A table of films, please")
    expect(answer).to_have_attribute("data-status", "complete", timeout=STREAM_TIMEOUT)
    table = answer.locator(".msg-body table")
    expect(table.locator("th")).to_have_text(["Film", "Year"])
    expect(table.locator("td")).to_have_text(["Vertigo", "1958"])
    expect(table.locator("td").nth(1)).to_have_css("text-align", "right")
    assert "|" not in answer.locator(".msg-body").inner_text()


def test_too_many_questions_says_how_long_to_wait(page, llm, settings):
    settings.RATE_LIMIT_REQUESTS = 1
    settings.RATE_LIMIT_WINDOW = 3600
    llm.set_scenario("scripted", tokens=["One."])
    page.goto("/movies/vertigo/")
    expect(ask(page, "First")).to_have_attribute("data-status", "complete", timeout=STREAM_TIMEOUT)
    page.get_by_label("Your question").fill("Second")
    page.get_by_label("Your question").press("Enter")
    notice = page.locator(".chat-notice")
    expect(notice).to_contain_text(re.compile(r"Too many questions right now\. Try again in \d+ s\."))
    expect(notice.get_by_role("button", name=re.compile(r"Retry \(\d+ s\)"))).to_be_disabled()
    expect(page.locator(".msg-user")).to_have_count(1)  # the refused question was not kept...
    assert page.get_by_label("Your question").input_value() == "Second"  # ...but given back to send later


def test_a_misconfigured_llm_says_so_without_a_retry(page, llm):
    llm.set_scenario("status_401")
    page.goto("/movies/vertigo/")
    answer = ask(page, "Hello?")
    expect(answer).to_have_attribute("data-status", "failed", timeout=STREAM_TIMEOUT)
    expect(answer.get_by_role("alert")).to_contain_text("The language model is misconfigured")
    expect(answer.get_by_role("button", name="Retry")).to_have_count(0)


def test_the_all_films_chat_links_to_the_films_it_cites(page):
    page.goto("/chat/")
    page.get_by_role("button", name="A film about a samurai or a detective?").click()
    answer = page.locator(".msg-assistant")
    expect(answer).to_have_attribute("data-status", "complete", timeout=STREAM_TIMEOUT)
    expect(answer.locator(".msg-note")).to_contain_text("Offline answer")
    sources = answer.locator(".source")
    films = {
        re.match(r"/movies/([^/]+)/", href).group(1)
        for href in sources.evaluate_all("els => els.map(e => e.getAttribute('href'))")
    }
    assert len(films) >= 2
    cite = answer.locator("a.cite").first
    href = cite.get_attribute("href")
    section = cite.get_attribute("data-section")
    cite.click()
    page.wait_for_url(f"**{href}")
    expect(page.locator(f"#section-{section}")).to_have_class(re.compile(r"\bhighlight\b"))
    page.go_back()
    expect(page.locator(".msg-assistant")).to_have_attribute("data-status", "complete")


def test_enter_sends_and_shift_enter_makes_a_new_line(page, llm):
    llm.set_scenario("scripted", tokens=["Two lines received."])
    page.goto("/movies/vertigo/")
    box = page.get_by_label("Your question")
    box.fill("line one")
    box.press("Shift+Enter")
    box.press_sequentially("line two")
    assert box.input_value() == "line one\nline two"
    expect(page.locator(".msg-user")).to_have_count(0)
    box.press("Enter")
    expect(page.locator(".msg-user .msg-text")).to_have_text("line one\nline two")
    expect(page.locator(".msg-assistant")).to_have_attribute("data-status", "complete", timeout=STREAM_TIMEOUT)
    assert box.input_value() == ""


def test_logging_in_keeps_the_conversations_of_the_visit(page, llm):
    llm.set_scenario("scripted", tokens=["Kept."])
    page.goto("/movies/vertigo/")
    answer = ask(page, "Remember this question")
    expect(answer).to_have_attribute("data-status", "complete", timeout=STREAM_TIMEOUT)
    conversation = re.search(r"\?c=([0-9a-f-]{36})", page.url).group(1)
    page.goto("/chat/history/")
    expect(page.locator(".history-title")).to_have_text("Remember this question")

    username = f"fan-{uuid.uuid4().hex[:8]}"
    page.get_by_role("link", name="Sign up").click()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill("a-long-Passw0rd-for-tests")
    page.get_by_label("Password confirmation").fill("a-long-Passw0rd-for-tests")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url("**/chat/history/")
    expect(page.get_by_role("status")).to_contain_text(
        "Your conversation from this visit is now saved to your account."
    )
    expect(page.locator(".history-title")).to_have_text("Remember this question")
    owner = off_main_thread(lambda: Conversation.objects.select_related("user").get(uuid=conversation).user)
    assert owner is not None and owner.username == username

    page.get_by_role("link", name="Remember this question").click()
    page.wait_for_url(f"**/movies/vertigo/?c={conversation}")
    expect(page.locator(".msg-assistant .msg-body")).to_have_text("Kept.")

    # Logged out, the conversation is the account's: not this (new) anonymous visit's.
    page.get_by_role("button", name="Log out").click()
    page.goto(f"/movies/vertigo/?c={conversation}")
    expect(page.locator(".chat-notice")).to_contain_text("This conversation is not available")
    expect(page.locator(".msg-user")).to_have_count(0)


@pytest.mark.parametrize("path", ["/movies/vertigo/", "/", "/chat/", "/chat/history/"])
def test_pages_fit_a_phone_screen(page, path):
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(path)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    if path == "/movies/vertigo/":
        # The chat comes under the report on a phone, beside it on a wide screen.
        report = page.locator("article.film").bounding_box()
        chat = page.locator("#chat").bounding_box()
        assert chat["y"] >= report["y"] + report["height"]
        page.set_viewport_size({"width": 1280, "height": 860})
        report = page.locator("article.film").bounding_box()
        chat = page.locator("#chat").bounding_box()
        assert chat["x"] >= report["x"] + report["width"]


def test_a_long_conversation_opens_on_its_latest_turns_and_shows_earlier_ones_on_demand(page, llm, settings):
    settings.CHAT_CONVERSATION_PAGE_SIZE = 5  # pages that split a turn: an answer's question is on the page before
    llm.set_scenario("scripted", tokens=["Answer 0"])
    page.goto("/movies/vertigo/")
    answer = ask(page, "Question 0")
    expect(answer).to_have_attribute("data-status", "complete", timeout=STREAM_TIMEOUT)
    conversation = re.search(r"\?c=([0-9a-f-]{36})", page.url).group(1)

    def more_turns() -> None:
        owner = Conversation.objects.get(uuid=conversation)
        for n in range(1, 10):
            question = Message.objects.create(conversation=owner, role="user", content=f"Question {n}")
            Message.objects.create(conversation=owner, role="assistant", reply_to=question, content=f"Answer {n}")

    off_main_thread(more_turns)
    page.reload()
    questions = page.locator(".msg-user .msg-text")
    expect(questions).to_have_text([f"Question {n}" for n in range(5, 10)])
    expect(page.locator(".msg-assistant .msg-body")).to_have_text([f"Answer {n}" for n in range(5, 10)])
    earlier = page.get_by_role("button", name="Show earlier messages")
    earlier.click()
    expect(questions).to_have_text([f"Question {n}" for n in range(10)])
    expect(page.locator(".msg-assistant .msg-body")).to_have_text([f"Answer {n}" for n in range(10)])
    expect(earlier).to_be_hidden()
    page.get_by_role("button", name="New chat").click()
    expect(page.locator(".msg")).to_have_count(0)
    expect(earlier).to_be_hidden()
