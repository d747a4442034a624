from types import SimpleNamespace

from llm import DEFAULT_BASE_URL, config_from_settings


def settings_like(**overrides: object) -> SimpleNamespace:
    values = {
        "OPENROUTER_API_KEY": "",
        "LLM_BASE_URL": "",
        "LLM_MODEL": "openai/gpt-4o-mini",
        "LLM_FALLBACK_MODELS": [],
        "LLM_CONNECT_TIMEOUT": 5.0,
        "LLM_TIMEOUT": 30.0,
        "LLM_REFERER": "",
        "LLM_TITLE": "flickora",
    }
    return SimpleNamespace(**{**values, **overrides})


def test_no_key_and_no_base_url_means_no_llm():
    assert config_from_settings(settings_like()) is None


def test_a_key_alone_means_openrouter_with_fallbacks():
    config = config_from_settings(
        settings_like(OPENROUTER_API_KEY="sk-or-1", LLM_FALLBACK_MODELS=["a/b", "c/d"], LLM_TIMEOUT=12)
    )
    assert (config.base_url, config.provider, config.api_key) == (DEFAULT_BASE_URL, "openrouter", "sk-or-1")
    assert (config.fallback_models, config.read_timeout, config.referer, config.title) == (
        ("a/b", "c/d"),
        12.0,
        None,
        "flickora",
    )
    assert "sk-or-1" not in repr(config)


def test_a_base_url_alone_means_an_openai_compatible_server_without_a_key():
    config = config_from_settings(settings_like(LLM_BASE_URL="http://127.0.0.1:11434/v1/", LLM_MODEL="llama3"))
    assert (config.base_url, config.provider, config.api_key, config.model) == (
        "http://127.0.0.1:11434/v1",
        "openai-compatible",
        None,
        "llama3",
    )
