"""Progress bars for management commands (tqdm on the command's stderr; off with --no-progress)."""

from collections.abc import Sequence
from typing import Any

from tqdm import tqdm


def progress_bar(enabled: bool, stream: Any) -> Any:
    def wrap(items: Sequence[Any], description: str) -> Any:
        return tqdm(items, desc=description, unit="", file=stream, disable=not enabled, dynamic_ncols=True)

    return wrap
