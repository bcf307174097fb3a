"""Torch versions: the declared minimum is the same in pyproject.toml, setup.py, the README and the
script that tests it (scripts/check_torch_versions.sh); a build refuses to load under another torch."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_declared_minimum_torch_is_the_same_everywhere():
    declared = re.search(r'"torch>=([\d.]+)"', (ROOT / "pyproject.toml").read_text()).group(1)
    major, minor = re.search(r"MINIMUM_TORCH = \((\d+), (\d+)\)", (ROOT / "setup.py").read_text()).groups()
    assert f"{major}.{minor}" == declared
    assert f"torch ≥ {declared} (`pyproject.toml`)" in (ROOT / "README.md").read_text()
    script = (ROOT / "scripts" / "check_torch_versions.sh").read_text()
    assert f'[ "$minimum" = {declared} ]' in script
    assert re.search(r"\|\| versions=\((\S+)", script).group(1).startswith(f"{declared}.")


def test_import_under_another_torch_is_a_clear_error():
    """The build records its torch; importing under another raises an ImportError naming both
    versions and the rebuild command (here the recorded version is faked)."""
    code = ("import sys, types, torch\n"
            "fake = types.ModuleType('involution_cuda._build_info')\n"
            "fake.TORCH_VERSION = '1.0.0+fake'\n"
            "sys.modules['involution_cuda._build_info'] = fake\n"
            "try:\n"
            "    import involution_cuda\n"
            "except ImportError as error:\n"
            "    print(error)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT / "tests", check=True)
    import torch

    assert "built against torch 1.0.0+fake" in result.stdout
    assert f"torch {torch.__version__} is installed" in result.stdout
    assert "pip install --no-build-isolation" in result.stdout
