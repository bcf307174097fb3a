"""Every case of the bad-input catalogue raises a clear Python exception at every entry point,
with a message that names the argument it rejects.

The catalogue runs in a subprocess: a crash (segfault, abort) there fails this test instead of
killing the test runner.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

import bad_input_catalogue as catalogue

HERE = Path(__file__).resolve().parent
CLEAR = {"ValueError", "TypeError"}  # argument problems, as Python itself reports them


@pytest.fixture(scope="module")
def outcomes():
    result = subprocess.run([sys.executable, str(HERE / "bad_input_catalogue.py")],
                            capture_output=True, text=True, cwd=HERE, timeout=300)
    assert result.returncode == 0, f"the catalogue process died ({result.returncode}): {result.stderr[-2000:]}"
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def test_catalogue_is_broad(outcomes):
    kinds = {o["kind"] for o in outcomes}
    assert len(kinds) >= 15
    assert {o["entry"] for o in outcomes} >= {"involution", "reference", "decomposition", "raw op", "module"}
    assert len(outcomes) == len(list(catalogue.calls()))
    assert all(o["names"] for o in outcomes)


def test_every_case_raises_a_clear_error(outcomes):
    unclear = [o for o in outcomes if o["error"] not in CLEAR or len(o["message"]) < 15]
    assert not unclear, "\n".join(json.dumps(o) for o in unclear)


def test_every_message_names_its_argument(outcomes):
    unnamed = [o for o in outcomes if not all(name in o["message"] for name in o["names"])]
    assert not unnamed, "\n".join(json.dumps(o) for o in unnamed)
