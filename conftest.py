"""Suite-wide hygiene for every pytest run from this checkout (``tests/``, the chapters under nbval, or one
chapter alone): results the chapters save go to a temporary folder, never into the committed book/results/, and
the run fails if it changed a tracked file. Test fixtures live in tests/conftest.py."""
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("BOOK_PROFILE", "quick")
os.environ.setdefault("TQDM_DISABLE", "1")
# the chapters' quick outputs were executed with MKL's vendor-independent branch (restore_core/book/runner.py
# mkl_branch); the kernels nbval starts inherit it from here when pytest runs without `make test`
os.environ.setdefault("MKL_CBWR", "COMPATIBLE")

REPO = Path(__file__).resolve().parent
# Chapters executed by nbval (and anything else calling save_results without out_dir) write their results here,
# never into the committed book/results/: the suite must leave every tracked file as it was.
_RESULTS_OUT = tempfile.mkdtemp(prefix="restore-core-test-results-")
os.environ["RESTORE_CORE_RESULTS_OUT"] = _RESULTS_OUT


def tracked_state(repo: Path = REPO):
    """{path: sha1 of its bytes} for every tracked file that differs from HEAD (modified, deleted, added), i.e.
    the part of the work tree a test run could have changed; None outside a git checkout."""
    try:
        out = subprocess.run(["git", "-C", str(repo), "diff", "HEAD", "--name-only", "-z"], capture_output=True,
                             timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    state = {}
    for name in filter(None, out.decode().split("\0")):
        p = repo / name
        state[name] = hashlib.sha1(p.read_bytes()).hexdigest() if p.is_file() else None
    return state


def pytest_sessionstart(session):
    session.config._tracked_before = tracked_state()


def pytest_sessionfinish(session, exitstatus):
    before = getattr(session.config, "_tracked_before", None)
    shutil.rmtree(_RESULTS_OUT, ignore_errors=True)
    if before is None or os.environ.get("RESTORE_CORE_SKIP_TREE_CHECK"):
        return
    after = tracked_state()
    changed = sorted(k for k in set(before) | set(after or {}) if before.get(k) != (after or {}).get(k))
    if changed:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        msg = (f"the test run changed {len(changed)} tracked file(s): {', '.join(changed[:10])}"
               f"{' ...' if len(changed) > 10 else ''}; tests must write to temporary folders")
        if reporter is not None:
            reporter.write_line(f"FAILED tracked-files check: {msg}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
