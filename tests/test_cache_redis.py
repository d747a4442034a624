"""The answer cache on a real Redis (REDIS_URL), shared by processes."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_chat import ask_and_read, message_of

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed (.ci/run installs it with apt-get)")
        pytest.skip("redis-server is not installed: apt-get install redis-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(5)


def test_redis_url_selects_the_redis_cache_shared_by_processes(redis_url):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "flickora.settings", "REDIS_URL": redis_url}
    write = "import django; django.setup(); from django.core.cache import cache; cache.set('shared', 'across', 60)"
    read = (
        "import django; django.setup(); from django.conf import settings; from django.core.cache import cache; "
        "print(settings.CACHES['default']['BACKEND'], cache.get('shared'))"
    )
    for code in (write, read):
        result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == "django.core.cache.backends.redis.RedisCache across\n"


def test_the_answer_cache_lives_in_redis(web, llm, settings, redis_url):
    import redis

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url}}
    settings.RESPONSE_CACHE_TTL = 120
    store = redis.Redis.from_url(redis_url)
    store.flushdb()
    llm.set_scenario("scripted", tokens=["From ", "Redis."])
    ask_and_read(web, "What does Redis remember about Vertigo?")
    assert len(store.keys("*answer:*")) == 1
    payload, _, _, events = ask_and_read(web, "What does Redis remember about Vertigo?")
    assert events[-1].data["cached"] is True
    assert message_of(payload).content == "From Redis."
    assert len(llm.requests) == 1
    ttl = store.ttl(store.keys("*answer:*")[0])
    assert 0 < ttl <= 120
