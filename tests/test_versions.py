"""The declared minimum torch is the same in pyproject.toml, setup.py, the README and the script
that tests it (scripts/check_torch_versions.sh)."""
import re
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
