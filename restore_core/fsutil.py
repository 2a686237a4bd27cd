"""File-system helpers shared by the atomic writers (temporary file in the target folder + ``os.replace``)."""
from __future__ import annotations

import os
from typing import Union

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
