"""The test suite leaves every tracked file as it was: the check in the root conftest.py fails a run that changes
one, and results that chapters save under any pytest run (the suite, or one chapter alone) go to a temporary
folder, never to book/results/."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

from restore_core.book.results import RESULTS_DIR, results_out_dir, save_results

TESTS = Path(__file__).resolve().parent
ROOT_CONFTEST = TESTS.parent / "conftest.py"


def _git(cwd, *args):
    subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True)


def _run_suite(repo: Path, body: str, folder: str = "tests") -> subprocess.CompletedProcess:
    """A throw-away git repository with this checkout's conftest files and pytest layout, and one test file in
    ``folder``; runs ``pytest folder`` there."""
    (repo / "tests").mkdir(exist_ok=True)
    (repo / folder).mkdir(exist_ok=True)
    shutil.copy(ROOT_CONFTEST, repo / "conftest.py")
    shutil.copy(TESTS / "conftest.py", repo / "tests" / "conftest.py")
    (repo / "pytest.ini").write_text("[pytest]\ntestpaths = tests\n")
    (repo / "data.txt").write_text("committed\n")
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    (repo / folder / "test_x.py").write_text(body)
    env = {k: v for k, v in os.environ.items() if k not in ("RESTORE_CORE_SKIP_TREE_CHECK",)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", folder], cwd=repo,
                          capture_output=True, text=True, timeout=120, env=env)


def test_a_run_that_changes_a_tracked_file_fails(tmp_path):
    r = _run_suite(tmp_path, "from pathlib import Path\n\ndef test_writes():\n"
                             "    (Path(__file__).parents[1] / 'data.txt').write_text('changed')\n")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 passed" in r.stdout and "changed 1 tracked file(s): data.txt" in r.stdout


def test_a_run_that_changes_nothing_passes(tmp_path):
    r = _run_suite(tmp_path, "def test_nothing():\n    assert True\n")
    assert r.returncode == 0, r.stdout + r.stderr


def test_results_go_to_a_temporary_folder_under_the_suite(tmp_path):
    out = results_out_dir()
    assert out.resolve() != RESULTS_DIR.resolve() and out == Path(os.environ["RESTORE_CORE_RESULTS_OUT"])
    path = save_results("hygiene_probe", "quick", paper="-", table="-", scale="-",
                        rows=[{"variant": "a", "dataset": "d", "metric": "m", "paper": None, "ours": 1.0}])
    assert path.parent == out and not (RESULTS_DIR / path.name).exists()
    path.unlink()


def test_a_run_outside_tests_is_covered_too(tmp_path):
    """`pytest book/<chapter>.ipynb --nbval` alone loads the root conftest: results are redirected and the tree is
    checked (the redirect once lived in tests/conftest.py, which such a run does not load)."""
    body = ("import os\nfrom pathlib import Path\n\ndef test_redirected():\n"
            "    out = Path(os.environ['RESTORE_CORE_RESULTS_OUT'])\n"
            "    assert out.is_dir() and Path(__file__).parents[1] not in out.parents\n"
            "    (Path(__file__).parents[1] / 'data.txt').write_text('changed')\n")
    r = _run_suite(tmp_path, body, folder="book")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 passed" in r.stdout and "changed 1 tracked file(s): data.txt" in r.stdout
