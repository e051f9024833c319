"""Private state files: the dev token, SQLite databases and logs under `.duratask/`.

They hold a bearer token, prompts and outputs, so only their owner may read them. Each
is created with mode 0600 (its directory 0700) from the first byte: `os.open` with a
mode, never a world-readable file chmod'ed afterwards, which leaves a window in which
another local user can open it and keep the descriptor.
"""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """Create `path` (and its parents) as 0700 if missing; an existing one is left as is."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    return path


def create_private(path: Path, content: bytes = b"", exclusive: bool = False) -> bool:
    """Create `path` as 0600 (writing `content`); False if it existed (left untouched)."""
    private_dir(path.parent)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        fd = os.open(path, flags, FILE_MODE)
    except FileExistsError:
        if exclusive:
            raise
        return False
    with os.fdopen(fd, "wb") as f:
        f.write(content)
    return True


def open_private_append(path: Path) -> int:
    """A file descriptor appending to `path`, created 0600 if missing (for logs)."""
    private_dir(path.parent)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
