"""restore_core/allocator.py: the command line's malloc settings keep freed tensor memory in the process. Each
case runs in a fresh subprocess (the settings are process-wide) and asks glibc (``mallinfo2``) where a 24 MB
block, an activation's size, came from and whether its memory stayed after ``free``."""
import os
import platform
import subprocess
import sys

import pytest

import restore_core.allocator as allocator

PROBE = """
import ctypes, sys
from restore_core.allocator import reuse_freed_memory, allocator_state
libc = ctypes.CDLL(None)
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                 "fsmblks", "uordblks", "fordblks", "keepcost")]
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
if sys.argv[1] == "1":
    reuse_freed_memory()
n = 24 << 20
before = libc.mallinfo2()
p = libc.malloc(n)
during = libc.mallinfo2()
libc.free(p)
after = libc.mallinfo2()
q = libc.malloc(n)
again = libc.mallinfo2()
libc.free(q)
print(allocator_state())
print(during.hblkhd - before.hblkhd, after.arena - before.arena, again.arena - after.arena)
"""
GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def _probe(apply: bool, **env):
    out = subprocess.run([sys.executable, "-c", PROBE, "1" if apply else "0"], capture_output=True, text=True,
                         check=True, env={**os.environ, **env}).stdout.split("\n")
    return out[0], [int(v) for v in out[1].split()]


@pytest.mark.skipif(not GLIBC, reason="the settings are glibc's")
def test_activation_sized_blocks_come_from_the_heap_and_stay():
    state, (mmapped, kept, regrown) = _probe(True)
    assert state.startswith("glibc: mmap above 32 MiB")
    assert mmapped == 0                      # served from the heap, not a fresh mmap
    assert kept >= 24 << 20 and regrown == 0   # freed memory stays with the process and serves the next request
    state, (mmapped, kept, regrown) = _probe(False)
    assert state.startswith("unchanged") and mmapped >= 24 << 20   # glibc's default: a fresh mmap (page faults)


@pytest.mark.skipif(not GLIBC, reason="the settings are glibc's")
def test_env_var_leaves_malloc_alone():
    state, (mmapped, _, _) = _probe(True, RESTORE_CORE_MALLOC="default")
    assert state == "unchanged (RESTORE_CORE_MALLOC=default)" and mmapped >= 24 << 20


def test_only_the_program_applies_it(monkeypatch):
    from restore_core import cli

    calls = []
    monkeypatch.setattr(allocator, "reuse_freed_memory", lambda: calls.append(1) or "test")
    with monkeypatch.context() as m:
        m.setattr(cli, "main", lambda argv=None: 0)
        assert cli.console_main() == 0 and calls == [1]
    calls.clear()
    assert cli.main(["models"]) == 0 and calls == []     # main() itself (tests, notebooks) changes nothing
