"""The documentation's code runs as written."""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_readme_python_snippet_runs_as_pasted():
    """The README's Python block, pasted into a session started in the repository."""
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert len(blocks) == 1
    code = blocks[0] + "\nprint('value', tuple(value_ablated.shape))\n"
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "value (8,)" in r.stdout
