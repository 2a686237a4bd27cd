"""Environment variables set for the duration of a block."""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator, Mapping


@contextmanager
def patched_environ(env: Mapping[str, str]) -> Iterator[Mapping[str, str]]:
    """Set ``env`` in ``os.environ`` inside the block; afterwards every key has its earlier value again (or is
    absent again), also when the block raises."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield env
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
