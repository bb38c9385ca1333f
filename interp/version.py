"""Code version string for checkpoints and reports."""

import functools
import subprocess
from pathlib import Path

from interp import __version__


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          timeout=5, check=True).stdout.strip()


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """``"0.1.0+g<sha>[-dirty]"`` inside a git checkout of the package, else ``"0.1.0"``.

    Read once, when this module is first imported: a long run reports the code it loaded,
    not whatever the checkout holds when it first saves."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return __version__
    try:
        sha = _git(root, "rev-parse", "--short", "HEAD")
        dirty = bool(_git(root, "status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{sha}{'-dirty' if dirty else ''}"


code_version()  # pin it at import (cached)
