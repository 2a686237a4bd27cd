"""File-system helpers shared by the atomic writers (temporary file in the target folder + ``os.replace``)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Union

PathLike = Union[str, "os.PathLike[str]"]


def current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def chmod_like_new_file(path: PathLike) -> None:
    """Give ``path`` the mode a plain ``open(path, "w")`` would have (0o666 minus the umask).

    ``tempfile.mkstemp`` creates files readable by their owner only; a file moved into place from it would keep
    that mode, so results, notebooks and images written atomically would not be readable by the group.
    """
    os.chmod(path, 0o666 & ~current_umask())


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    Readers never see a half-written file; on any error the temporary file is removed and ``path`` is untouched.
    The parent folder is created; the file gets the mode of a plain new file. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        chmod_like_new_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: PathLike, obj: Any) -> Path:
    """Write ``obj`` as JSON (indent 1, keys in their order, final newline), atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=False) + "\n")
