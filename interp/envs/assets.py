"""Our own object sprites and the asset trees that put them into the stock maze.

Sprites are drawn here with PIL (nothing is copied): a *gem* (a filled diamond) and a *line*
(a thick diagonal from bottom-left to top-right) in one pure colour on a transparent
background, 128x128 like the engine's Kenney sprites (the engine scales every sprite to its
cell).

An :class:`AssetSet` names what the maze draws: the rewarded object (drawn for the cheese,
tile 2), an optional second object (drawn for the reserved explosion tile 54, which is
visible, walkable and pays nothing) and the background. :func:`asset_root` builds a
procgen ``resource_root`` for it: a directory of symlinks to procgen's ``data/assets`` with
those files replaced, cached under ``~/.cache/interp/assets/<content hash>/``.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

from interp.envs.base import EnvConfigError, import_procgen

# Pure colours: RGB primaries and secondaries, plus black and white.
COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "blue": (0, 0, 255),
    "cyan": (0, 255, 255),
    "green": (0, 255, 0),
    "purple": (255, 0, 255),
    "red": (255, 0, 0),
    "white": (255, 255, 255),
    "yellow": (255, 255, 0),
}
SHAPES = ("gem", "line")
BACKGROUNDS = ("textured", "black")
SPRITE_SIZE = 128
OBJECT_NAMES = (f"'<colour>-<shape>' with colour in {', '.join(COLOURS)} and shape in "
                f"{', '.join(SHAPES)}")

GOAL_SPRITE = "misc_assets/cheese.png"          # maze tile 2 (GOAL)
SECOND_SPRITE = "misc_assets/explosion1.png"    # reserved tile 54 (EXPLOSION)
SECOND_TILE = 54
MAZE_BACKGROUNDS = "topdown_backgrounds"        # the maze's background images
_TREE_FORMAT = 1  # bump when the tree layout or the drawing code changes


def parse_object(name: str) -> tuple[str, str]:
    """``"yellow-line"`` -> ``("yellow", "line")``; a ValueError lists the valid names."""
    colour, _, shape = name.partition("-")
    if colour not in COLOURS or shape not in SHAPES:
        raise ValueError(f"unknown object {name!r}: use {OBJECT_NAMES}")
    return colour, shape


def sprite(name: str, size: int = SPRITE_SIZE) -> Image.Image:
    """The RGBA sprite of an object such as ``"red-gem"``."""
    colour, shape = parse_object(name)
    rgba = (*COLOURS[colour], 255)
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    m = size * 0.12  # margin
    if shape == "gem":
        c = size / 2
        draw.polygon([(c, m), (size - m, c), (c, size - m), (m, c)], fill=rgba)
    else:
        w = size * 0.28  # thick enough to survive the engine's downscaling to a few pixels
        draw.line([(m, size - m), (size - m, m)], fill=rgba, width=round(w))
    return img


def procgen_assets_dir() -> Path:
    return Path(import_procgen().__file__).parent / "data" / "assets"


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class AssetSet:
    """What the maze draws: the rewarded object, an optional second object (the distractor),
    the background. Bad names raise :class:`EnvConfigError` (a ValueError) naming the fix."""

    goal: str
    second: str | None = None
    background: str = "textured"

    def __post_init__(self):
        for key, name in (("goal", self.goal), ("distractor", self.second)):
            if name is None and key == "distractor":
                continue
            try:
                parse_object(name)
            except (ValueError, AttributeError):
                raise EnvConfigError(
                    f"{key}={name!r} is not an object: use {OBJECT_NAMES}"
                    + (" (or None for no distractor)" if key == "distractor" else "")) from None
        if self.background not in BACKGROUNDS:
            raise EnvConfigError(f"background={self.background!r}: use one of "
                                 f"{', '.join(BACKGROUNDS)}")

    def replacements(self) -> dict[str, bytes]:
        """Relative asset path -> PNG bytes of every file this set replaces."""
        files = {GOAL_SPRITE: _png(sprite(self.goal))}
        if self.second is not None:
            files[SECOND_SPRITE] = _png(sprite(self.second))
        if self.background == "black":
            for p in sorted((procgen_assets_dir() / MAZE_BACKGROUNDS).glob("*.png")):
                with Image.open(p) as im:
                    size = im.size
                files[f"{MAZE_BACKGROUNDS}/{p.name}"] = _png(Image.new("RGB", size, (0, 0, 0)))
        return files

    def digest(self) -> str:
        h = hashlib.sha256(f"interp-assets-v{_TREE_FORMAT}".encode())
        for path, data in sorted(self.replacements().items()):
            h.update(path.encode() + b"\0" + hashlib.sha256(data).digest())
        return h.hexdigest()[:16]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "interp" / "assets"


def asset_root(assets: AssetSet, root: Path | None = None) -> str:
    """Build (once) the asset tree of ``assets``; returns it as a procgen ``resource_root``."""
    root = Path(root) if root is not None else cache_dir()
    target = root / assets.digest()
    if not target.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
        try:
            _build_tree(tmp, assets.replacements())
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():  # a concurrent builder did not win the race either
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return str(target) + "/"


def _build_tree(dst: Path, replacements: dict[str, bytes]) -> None:
    """Mirror procgen's assets as symlinks; directories holding a replacement become real."""
    src = procgen_assets_dir()
    real_dirs = {Path(p).parent for p in replacements} | {Path(".")}
    real_dirs |= {parent for d in list(real_dirs) for parent in d.parents}
    for d in sorted(real_dirs):
        (dst / d).mkdir(parents=True, exist_ok=True)
        for entry in sorted((src / d).iterdir()):
            rel = d / entry.name
            if rel in real_dirs:
                continue
            if str(rel) in replacements:
                (dst / rel).write_bytes(replacements[str(rel)])
            else:
                os.symlink(entry, dst / rel)


def missing_files(resource_root: str) -> list[str]:
    """Asset files of procgen that the tree at ``resource_root`` lacks (empty when complete)."""
    src, dst = procgen_assets_dir(), Path(resource_root)
    return [str(p.relative_to(src)) for p in src.rglob("*")
            if p.is_file() and not (dst / p.relative_to(src)).is_file()]


STOCK = "stock procgen assets"
_process_assets: str | None = None  # the asset set this process's engine has loaded


def claim_assets(resource_root: str | None) -> None:
    """Bind this process to an asset set; raise if it already loaded a different one
    (procgen's C++ loads sprites once per process, from the first env created)."""
    global _process_assets
    wanted = resource_root or STOCK
    if _process_assets is None:
        _process_assets = wanted
    elif _process_assets != wanted:
        raise EnvConfigError(
            f"this process already loaded the sprites of {_process_assets!r}; procgen loads "
            f"sprites once per process, so an env with {wanted!r} would silently draw the "
            "first set. Build it with make_env(...), which runs variants with their own "
            "sprites in a worker process, or with interp.envs.remote.RemoteVecEnv.")
