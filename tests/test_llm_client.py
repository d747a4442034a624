"""The LLM client against a real HTTP server on loopback (benchmarks/fake_llm.py), one test per scenario.

No Django and no pytest-asyncio: each test drives its coroutine with asyncio.run().
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import socket
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from benchmarks.fake_llm import DEFAULT_TOKENS, FakeLLMServer
from llm import (
    LLMConfig,
    LLMError,
    StreamResult,
    aclose_shared_client,
    complete_chat,
    shared_client,
    stream_chat,
)
from llm.client import _proxy_for, _ssl_context
from llm.errors import parse_retry_after
from llm.sse import SSEDecoder

T = TypeVar("T")

KEY = "sk-or-v1-0123456789abcdef0123456789abcdef"
MODEL = "test/model"
MESSAGES = [
    {"role": "system", "content": "You are a film critic."},
    {"role": "user", "content": "Which Kubrick film should I watch first?"},
]
DEFAULT_TEXT = "".join(DEFAULT_TOKENS)  # "Hello, this is a fake reply."


@pytest.fixture
def server(fake_llm: FakeLLMServer) -> FakeLLMServer:
    """The suite's fake OpenRouter server, reset for each test."""
    return fake_llm


def run(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on a fresh loop and close that loop's shared client before the loop goes."""

    async def main() -> T:
        try:
            return await make()
        finally:
            await aclose_shared_client()

    return asyncio.run(main())


def config_for(server: FakeLLMServer, **overrides: Any) -> LLMConfig:
    values: dict[str, Any] = {"model": MODEL, "base_url": server.base_url, "api_key": KEY}
    values.update(overrides)
    return LLMConfig(**values)


async def collect(config: LLMConfig, **kwargs: Any) -> tuple[list[str], LLMError | None, StreamResult]:
    """The pieces received, the error that ended the stream (if any) and the result record."""
    pieces: list[str] = []
    result = StreamResult()
    try:
        async with contextlib.aclosing(
            stream_chat(config=config, messages=MESSAGES, result=result, **kwargs)
        ) as stream:
            async for piece in stream:
                pieces.append(piece)
    except LLMError as exc:
        return pieces, exc, result
    return pieces, None, result


async def expect_ok_after_fault(server: FakeLLMServer, **overrides: Any) -> None:
    """The next request on the same shared client is served normally."""
    client = shared_client()
    server.set_scenario("ok")
    pieces, error, result = await collect(config_for(server, **overrides))
    assert error is None
    assert "".join(pieces) == DEFAULT_TEXT
    assert result.done is True
    assert shared_client() is client


# --- valid streams ---------------------------------------------------------------------------------------


def test_ok_stream_yields_each_token_and_records_the_model(server: FakeLLMServer) -> None:
    pieces, error, result = run(lambda: collect(config_for(server)))

    assert error is None
    assert pieces == list(DEFAULT_TOKENS)
    assert "".join(pieces) == "Hello, this is a fake reply."
    assert result.finish_reason == "stop"
    assert result.model == MODEL
    assert result.done is True
    assert result.status == 200
    body = server.requests[-1].body
    assert body["model"] == MODEL
    assert body["messages"] == MESSAGES
    assert body["stream"] is True
    assert body["temperature"] == 0.3
    assert "models" not in body
    assert "max_tokens" not in body


def test_request_headers_and_fallback_models(server: FakeLLMServer) -> None:
    config = config_for(
        server,
        fallback_models=["backup/one", "backup/two"],
        referer="https://flickora.example",
        title="Flickora",
    )
    pieces, error, _ = run(lambda: collect(config, temperature=0.7, max_tokens=256))

    assert error is None
    assert "".join(pieces) == DEFAULT_TEXT
    request = server.requests[-1]
    assert request.method == "POST"
    assert request.path == "/api/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    assert request.headers["http-referer"] == "https://flickora.example"
    assert request.headers["x-title"] == "Flickora"
    assert request.headers["accept"] == "text/event-stream"
    assert request.body["models"] == [MODEL, "backup/one", "backup/two"]
    assert request.body["temperature"] == 0.7
    assert request.body["max_tokens"] == 256


def test_no_authorization_header_without_a_key(server: FakeLLMServer) -> None:
    pieces, error, _ = run(lambda: collect(config_for(server, api_key=None)))

    assert error is None
    assert "".join(pieces) == DEFAULT_TEXT
    headers = server.requests[-1].headers
    assert "authorization" not in headers
    assert "http-referer" not in headers
    assert "x-title" not in headers


def test_crlf_line_endings(server: FakeLLMServer) -> None:
    server.set_scenario("crlf")
    pieces, error, result = run(lambda: collect(config_for(server)))

    assert error is None
    assert "".join(pieces) == DEFAULT_TEXT
    assert result.done is True


def test_cr_only_line_endings(server: FakeLLMServer) -> None:
    server.set_scenario("ok", newline="\r")
    pieces, error, _ = run(lambda: collect(config_for(server)))

    assert error is None
    assert "".join(pieces) == DEFAULT_TEXT


def test_multibyte_characters_split_across_tcp_writes(server: FakeLLMServer) -> None:
    server.set_scenario("split_utf8")
    pieces, error, _ = run(lambda: collect(config_for(server)))

    assert error is None
    assert pieces == ["Le", " café", " à", " 日本", " 🎬"]
    assert "".join(pieces) == "Le café à 日本 🎬"


def test_several_data_lines_per_event_are_joined(server: FakeLLMServer) -> None:
    server.set_scenario("ok", multiline_data=True, newline="\r\n")
    pieces, error, result = run(lambda: collect(config_for(server)))

    assert error is None
    assert "".join(pieces) == DEFAULT_TEXT
    assert result.done is True


def test_usage_only_final_chunk_with_empty_choices(server: FakeLLMServer) -> None:
    usage = {"prompt_tokens": 42, "completion_tokens": 3, "total_tokens": 45, "cost": 0.00012}
    server.set_scenario("empty_choices_usage", tokens=["A", "B", "C"], usage=usage)
    pieces, error, result = run(lambda: collect(config_for(server)))

    assert error is None
    assert pieces == ["A", "B", "C"]
    assert result.finish_reason == "stop"


def test_echo_streams_back_the_last_user_message(server: FakeLLMServer) -> None:
    server.set_scenario("echo")
    pieces, error, _ = run(lambda: collect(config_for(server)))

    assert error is None
    assert pieces == ["Which", " Kubrick", " film", " should", " I", " watch", " first?"]
    assert "".join(pieces) == "Which Kubrick film should I watch first?"


def test_scripted_tokens_and_empty_pieces_are_skipped(server: FakeLLMServer) -> None:
    server.set_scenario("scripted", tokens=["2001", "", ": A Space", " Odyssey"], model="vendor/other")
    pieces, error, result = run(lambda: collect(config_for(server)))

    assert error is None
    assert pieces == ["2001", ": A Space", " Odyssey"]
    assert result.model == "vendor/other"


def test_finish_reason_without_done_is_a_complete_answer(server: FakeLLMServer) -> None:
    server.set_scenario("ok", send_usage=False, send_done=False)
    pieces, error, result = run(lambda: collect(config_for(server)))

    assert error is None
    assert "".join(pieces) == DEFAULT_TEXT
    assert result.finish_reason == "stop"
    assert result.done is True


def test_bench_streams_its_numbered_tokens(server: FakeLLMServer) -> None:
    server.set_scenario("bench", n=20, tokens_per_second=200)
    pieces, error, _ = run(lambda: collect(config_for(server)))

    assert error is None
    assert pieces == [f" tok{i}" for i in range(20)]


def test_non_streaming_json_answer_is_accepted(server: FakeLLMServer) -> None:
    answer = {"id": "gen-1", "model": MODEL, "choices": [{"message": {"content": "Whole."}, "finish_reason": "stop"}]}
    server.set_scenario("raw", content_type="application/json", chunks=[json.dumps(answer)])
    pieces, error, result = run(lambda: collect(config_for(server)))

    assert error is None
    assert pieces == ["Whole."]
    assert result.done is True


def test_complete_chat_joins_the_stream(server: FakeLLMServer) -> None:
    server.set_scenario("echo")
    text = run(lambda: complete_chat(config=config_for(server), messages=[{"role": "user", "content": "a b  c"}]))

    assert text == "a b  c"


# --- HTTP status errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "retryable", "retry_after", "detail"),
    [
        (401, "unauthorized", False, None, "No auth credentials found"),
        (402, "payment_required", False, None, "Insufficient credits"),
        (429, "rate_limited", True, 7.0, "Rate limit exceeded: free-models-per-min"),
        (500, "upstream_error", True, None, "Internal Server Error"),
        (503, "upstream_unavailable", True, None, "No available model provider"),
        (400, "bad_response", False, None, "Invalid request"),
        (504, "timeout", True, None, "Upstream timed out"),
    ],
)
def test_status_errors(
    server: FakeLLMServer, status: int, code: str, retryable: bool, retry_after: float | None, detail: str
) -> None:
    async def scenario() -> tuple[list[str], LLMError | None]:
        server.set_scenario(f"status_{status}")
        pieces, error, _ = await collect(config_for(server))
        await expect_ok_after_fault(server)
        return pieces, error

    pieces, error = run(scenario)

    assert pieces == []
    assert error is not None
    assert (error.code, error.retryable, error.retry_after, error.status) == (code, retryable, retry_after, status)
    assert detail in error.message
    assert len(server.requests) == 2


def test_long_upstream_error_bodies_are_cut_short(server: FakeLLMServer) -> None:
    server.set_scenario("status_400", message="x" * 5000)
    _, error, _ = run(lambda: collect(config_for(server)))

    assert error is not None
    assert error.code == "bad_response"
    assert len(error.message) < 300


# --- transport faults ------------------------------------------------------------------------------------


def test_connect_timeout(server: FakeLLMServer) -> None:
    async def scenario() -> LLMError | None:
        server.set_scenario("connect_timeout")
        _, error, _ = await collect(config_for(server, connect_timeout=0.2))
        await expect_ok_after_fault(server)
        return error

    error = run(scenario)

    assert error is not None
    assert (error.code, error.retryable, error.status) == ("timeout", True, None)
    assert len(server.requests) == 1  # only the follow-up reached the real server


def test_connection_refused(server: FakeLLMServer) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]

    async def scenario() -> LLMError | None:
        _, error, _ = await collect(config_for(server, base_url=f"http://127.0.0.1:{closed_port}/api/v1"))
        await expect_ok_after_fault(server)
        return error

    error = run(scenario)

    assert error is not None
    assert (error.code, error.retryable) == ("connection", True)


def test_hang_after_headers_is_a_read_timeout(server: FakeLLMServer) -> None:
    async def scenario() -> tuple[list[str], LLMError | None]:
        server.set_scenario("hang_after_headers")
        pieces, error, _ = await collect(config_for(server, read_timeout=0.3))
        await expect_ok_after_fault(server)
        return pieces, error

    pieces, error = run(scenario)

    assert pieces == []
    assert error is not None
    assert (error.code, error.retryable, error.retry_after) == ("timeout", True, None)
    assert server.wait_for_closed_early(1.0) is not None


def test_hang_mid_stream_keeps_the_partial_text(server: FakeLLMServer) -> None:
    async def scenario() -> tuple[list[str], LLMError | None]:
        server.set_scenario("hang_after_headers", tokens_before=2)
        pieces, error, _ = await collect(config_for(server, read_timeout=0.3))
        await expect_ok_after_fault(server)
        return pieces, error

    pieces, error = run(scenario)

    assert "".join(pieces) == "Hello,"
    assert error is not None
    assert (error.code, error.retryable) == ("timeout", True)


def test_tcp_reset_mid_stream(server: FakeLLMServer) -> None:
    async def scenario() -> tuple[list[str], LLMError | None]:
        server.set_scenario("reset_mid_stream", after=3)
        pieces, error, _ = await collect(config_for(server))
        await expect_ok_after_fault(server)
        return pieces, error

    pieces, error = run(scenario)

    assert "".join(pieces) == "Hello, this"
    assert error is not None
    assert (error.code, error.retryable, error.status) == ("stream_interrupted", True, None)


def test_error_chunk_after_tokens(server: FakeLLMServer) -> None:
    async def scenario() -> tuple[list[str], LLMError | None, StreamResult]:
        server.set_scenario("error_chunk_after_tokens", after=3)
        pieces, error, result = await collect(config_for(server))
        await expect_ok_after_fault(server)
        return pieces, error, result

    pieces, error, result = run(scenario)

    assert "".join(pieces) == "Hello, this"
    assert error is not None
    assert (error.code, error.retryable) == ("upstream_error", True)
    assert "Provider disconnected unexpectedly" in error.message
    assert result.finish_reason == "error"
    assert result.done is False


def test_eof_without_done_or_finish_reason_is_interrupted(server: FakeLLMServer) -> None:
    async def scenario() -> tuple[list[str], LLMError | None]:
        server.set_scenario("no_done")
        pieces, error, _ = await collect(config_for(server))
        await expect_ok_after_fault(server)
        return pieces, error

    pieces, error = run(scenario)

    assert "".join(pieces) == DEFAULT_TEXT
    assert error is not None
    assert (error.code, error.retryable) == ("stream_interrupted", True)


def test_invalid_json_is_a_bad_response(server: FakeLLMServer) -> None:
    good = json.dumps({"choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": None}]})
    server.set_scenario("raw", chunks=[f"data: {good}\n\n", "data: {not json\n\n", "data: [DONE]\n\n"])

    async def scenario() -> tuple[list[str], LLMError | None]:
        pieces, error, _ = await collect(config_for(server))
        await expect_ok_after_fault(server)
        return pieces, error

    pieces, error = run(scenario)

    assert pieces == ["ok"]
    assert error is not None
    assert (error.code, error.retryable) == ("bad_response", False)


# --- closing early ---------------------------------------------------------------------------------------


def test_aclose_after_two_tokens_closes_the_upstream_connection(server: FakeLLMServer) -> None:
    server.set_scenario("ok", tokens=[f" t{i}" for i in range(100)], delay=0.05)

    async def scenario() -> list[str]:
        stream = stream_chat(config=config_for(server), messages=MESSAGES)
        pieces = [await anext(stream), await anext(stream)]
        await stream.aclose()
        return pieces

    pieces = run(scenario)

    assert pieces == [" t0", " t1"]
    event = server.wait_for_closed_early(5.0)
    assert event is not None
    assert event.tokens_sent in (2, 3)  # closed by the client, not at the end of the 100 tokens


def test_cancelling_the_consumer_task_closes_the_upstream_connection(server: FakeLLMServer) -> None:
    server.set_scenario("ok", tokens=[f" t{i}" for i in range(100)], delay=0.05)

    async def scenario() -> None:
        two = asyncio.Event()

        async def consume() -> None:
            count = 0
            async for _ in stream_chat(config=config_for(server), messages=MESSAGES):
                count += 1
                if count == 2:
                    two.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(two.wait(), 5)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    run(scenario)

    event = server.wait_for_closed_early(5.0)
    assert event is not None
    assert event.tokens_sent < 100  # closed by the cancelled client, not at the end of the tokens


# --- secrets and logging ---------------------------------------------------------------------------------


def test_api_key_is_never_shown(server: FakeLLMServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    config = config_for(server)

    async def scenario() -> LLMError | None:
        await collect(config)
        server.set_scenario("status_401", message=f"Incorrect API key provided: {KEY}")
        _, error, _ = await collect(config)
        return error

    error = run(scenario)

    assert KEY not in repr(config)
    assert "api_key='***'" in repr(config)
    assert error is not None
    assert error.code == "unauthorized"
    assert KEY not in str(error)
    assert KEY not in repr(error)
    assert "[redacted]" in str(error)
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"  # it was really sent
    for record in caplog.records:
        text = record.getMessage()
        assert KEY not in text
        assert "Bearer" not in text
    summary = [r.getMessage() for r in caplog.records if r.name == "llm.client"]
    assert len(summary) == 2
    assert f"model={MODEL}" in summary[0]
    assert "status=200" in summary[0]
    assert "outcome=ok" in summary[0]
    assert "duration_ms=" in summary[0]
    assert "status=401 outcome=unauthorized" in summary[1]


# --- building blocks -------------------------------------------------------------------------------------


def test_config_provider_and_normalisation() -> None:
    assert LLMConfig(model="m").provider == "openrouter"
    assert LLMConfig(model="m").base_url == "https://openrouter.ai/api/v1"
    local = LLMConfig(model="llama3", base_url="http://localhost:11434/v1/", fallback_models=["a"], api_key="")
    assert local.provider == "openai-compatible"
    assert local.base_url == "http://localhost:11434/v1"
    assert local.fallback_models == ("a",)
    assert local.api_key is None
    assert "api_key=None" in repr(local)


def test_shared_client_is_one_per_event_loop() -> None:
    async def twice() -> tuple[aiohttp.ClientSession, aiohttp.ClientSession]:
        return shared_client(), shared_client()

    first, again = asyncio.run(twice())
    second, _ = run(twice)

    assert first is again
    assert first is not second


def test_retry_after_parsing() -> None:
    now = time.time()
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after(email.utils.formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_sse_decoder_byte_by_byte() -> None:
    stream = (
        "\ufeff: OPENROUTER PROCESSING\r\n\r\n"
        'data: {"a": "é"}\r\n\r\n'
        "event: ignored\rdata:no-space\r\r"
        "data: line one\ndata: line two\n\n"
        "id: 3\n: comment\ndata: 日本🎬\r\n\r\n"
        "data: [DONE]\n\n"
    ).encode()
    decoder = SSEDecoder()
    events: list[str] = []
    for i in range(len(stream)):
        events += decoder.feed(stream[i : i + 1])
    events += decoder.close()

    assert events == ['{"a": "é"}', "no-space", "line one\nline two", "日本🎬", "[DONE]"]


def test_sse_decoder_crlf_split_between_chunks_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n\r") == ["a"]
    assert decoder.feed(b"\ndata: b\r\n") == []
    assert decoder.close() == ["b"]


def test_sse_decoder_drops_an_unterminated_last_line() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"trunc') == []
    assert decoder.close() == []


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[FakeLLMServer, Path]]:
    """The fake LLM over HTTPS, with a certificate for 127.0.0.1 that no public authority signed (made by
    openssl), and that certificate's file."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with FakeLLMServer(tls=context) as server:
        yield server, cert


def test_the_stream_is_read_over_https_from_a_server_the_client_trusts(
    tls_server: tuple[FakeLLMServer, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, cert = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the authority trusted, as behind a proxy of one's own
    _ssl_context.cache_clear()
    try:
        pieces, error, result = run(lambda: collect(config_for(server)))
    finally:
        _ssl_context.cache_clear()

    assert server.base_url.startswith("https://127.0.0.1:")
    assert (error, "".join(pieces), result.done, len(server.requests)) == (None, DEFAULT_TEXT, True, 1)


def test_a_server_whose_certificate_is_not_trusted_is_refused(tls_server: tuple[FakeLLMServer, Path]) -> None:
    server, _ = tls_server
    _ssl_context.cache_clear()  # certifi's authorities, which never signed it

    pieces, error, _ = run(lambda: collect(config_for(server)))

    assert error is not None
    assert (pieces, error.code, error.retryable, len(server.requests)) == ([], "connection", True, 0)
    assert error.message == "Could not connect to 127.0.0.1. Please try again."


def test_the_shared_client_verifies_certificates() -> None:
    async def made() -> ssl.SSLContext:
        client = shared_client()
        try:
            return client.connector._ssl  # type: ignore[union-attr]
        finally:
            await aclose_shared_client()

    context = asyncio.run(made())

    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)


PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture
def proxied(server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[LLMConfig]:
    """HTTP_PROXY names the fake server, which plays the proxy; the LLM's address has nothing listening (port 9)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", server.origin)
    _proxy_for.cache_clear()
    yield config_for(server, base_url="http://127.0.0.1:9/api/v1")
    _proxy_for.cache_clear()


def test_the_request_goes_through_the_proxy_the_environment_names(server: FakeLLMServer, proxied: LLMConfig) -> None:
    pieces, error, _ = run(lambda: collect(proxied))

    assert (error, "".join(pieces)) == (None, DEFAULT_TEXT)
    assert (server.requests[-1].path, server.requests[-1].headers["host"]) == (
        "/api/v1/chat/completions",
        "127.0.0.1:9",
    )


def test_no_proxy_sends_the_request_straight_to_the_llm(
    server: FakeLLMServer, proxied: LLMConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")

    pieces, error, _ = run(lambda: collect(proxied))

    assert error is not None
    assert (pieces, error.code, len(server.requests)) == ([], "connection", 0)
