"""Client layer for OpenRouter / OpenAI-compatible chat models. Imports nothing from Django."""

from .client import (
    DEFAULT_BASE_URL,
    LLMConfig,
    StreamResult,
    aclose_shared_client,
    complete_chat,
    config_from_settings,
    shared_client,
    stream_chat,
)
from .errors import LLMError

__all__ = [
    "DEFAULT_BASE_URL",
    "LLMConfig",
    "LLMError",
    "StreamResult",
    "aclose_shared_client",
    "complete_chat",
    "config_from_settings",
    "shared_client",
    "stream_chat",
]
