"""patched_environ: values inside the block, the earlier state after it (also after an exception)."""
import os

import pytest

from restore_core.envutil import patched_environ


def test_patched_environ_restores_values_and_absence(monkeypatch):
    monkeypatch.setenv("RC_TEST_KEPT", "before")
    monkeypatch.delenv("RC_TEST_NEW", raising=False)
    with pytest.raises(RuntimeError):
        with patched_environ({"RC_TEST_KEPT": "inside", "RC_TEST_NEW": "1"}):
            assert os.environ["RC_TEST_KEPT"] == "inside" and os.environ["RC_TEST_NEW"] == "1"
            raise RuntimeError("the block fails")
    assert os.environ["RC_TEST_KEPT"] == "before"
    assert "RC_TEST_NEW" not in os.environ
