"""The real ASGI app served by uvicorn on 127.0.0.1 in a background thread, the Procfile's own server as a process
of its own, and a small SSE reader."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn


class LiveASGIServer:
    def __init__(self, app: Any) -> None:
        # Loopback is a trusted proxy here, as TRUSTED_PROXIES makes one in production: a test names the client's
        # address with X-Forwarded-For.
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", forwarded_allow_ips="127.0.0.1"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="live-asgi", daemon=True)
        self.url = ""

    def start(self) -> LiveASGIServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@dataclass
class Event:
    event: str
    data: Any
    id: str | None


def parse_sse(raw: bytes) -> list[Event]:
    """Events of an SSE body (comments and retry lines skipped); data is decoded JSON."""
    events = []
    for block in raw.decode().split("\n\n"):
        fields: dict[str, list[str]] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value[1:] if value.startswith(" ") else value)
        if "data" in fields:
            data = "\n".join(fields["data"])
            events.append(Event(fields.get("event", ["message"])[0], json.loads(data), fields.get("id", [None])[0]))
    return events


def read_stream(client: httpx.Client, url: str, **kwargs: Any) -> tuple[httpx.Response, bytes, list[Event]]:
    with client.stream("GET", url, timeout=30, **kwargs) as response:
        raw = response.read()
    return response, raw, parse_sse(raw)


def iter_events(response: httpx.Response) -> Iterator[Event]:
    """Events as they arrive on an open streaming response."""
    buffer = b""
    for chunk in response.iter_raw():
        buffer += chunk
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            yield from parse_sse(block + b"\n\n")


ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url(settings_dict: dict[str, Any]) -> str:
    """A DATABASE_URL for the database of these (Django) settings, on the embedded server's socket."""
    host = str(settings_dict["HOST"]).replace("/", "%2F")
    return f"postgres://{settings_dict['USER']}@{host}:{settings_dict['PORT'] or 5432}/{settings_dict['NAME']}"


def procfile_command(process: str) -> str:
    """The command line of one of the Procfile's processes."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    return next(line.split(":", 1)[1].strip() for line in lines if line.startswith(f"{process}:"))


@contextmanager
def procfile_server(settings_dict: dict[str, Any], **env: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """The Procfile's web command (gunicorn with the uvicorn worker, one worker) on a free loopback port, against
    the database of `settings_dict`, with `env` added; yields its base URL and process once /healthz answers, and
    stops it (and waits for its database sessions to end) afterwards."""
    import psycopg

    port = free_port()
    command = procfile_command("web")
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "DJANGO_"))}
    environment.update(
        DJANGO_SETTINGS_MODULE="flickora.settings",
        DATABASE_URL=database_url(settings_dict),
        HOST="127.0.0.1",
        PORT=str(port),
        WEB_CONCURRENCY="1",
        PATH=f"{Path(sys.executable).parent}:{environment.get('PATH', '')}",
        # As in tests/settings.py: every test client is 127.0.0.1, so no limit a test does not set itself.
        RATE_LIMIT_REQUESTS="10000",
        RATE_LIMIT_IP_REQUESTS="10000",
        RATE_LIMIT_IP_NEW_SESSIONS="10000",
    )
    environment.update(env)
    server = subprocess.Popen(  # the Procfile's own command line, exec'd so that the server is this process
        ["/bin/sh", "-c", f"exec {command}"],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=5) as probe:
            for _ in range(1200):
                try:
                    if probe.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
        yield url, server
    finally:
        server.terminate()
        server.wait(timeout=30)
        # Its connections close with its processes, and PostgreSQL ends their sessions a moment later.
        with psycopg.connect(database_url(settings_dict).replace("postgres://", "postgresql://")) as conn:
            for _ in range(100):
                others = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchone()[0]
                if not others:
                    break
                time.sleep(0.1)
