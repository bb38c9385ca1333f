"""Drawing Keys and Chests: Heist's sprites, read at run time from the installed procgen
package (never copied into the repo), scaled with PIL into the cells of a 64x64 frame that shows
the whole world, and blended into all envs' frames at once."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

FRAME = 64
BACKGROUNDS = "topdown_backgrounds"
SPRITES = {"wall": "kenney/Ground/Dirt/dirtCenter.png", "key": "misc_assets/keyGreen.png",
           "chest": "misc_assets/lock_blue.png", "agent": "misc_assets/spaceAstronauts_008.png"}
OBJECT_SCALE = {"key": 0.75, "chest": 1.0, "agent": 0.75}  # of a cell, as the fork's radii
ICON_W, ICON_H = 4, 6  # inventory key icon, pixels; icons touch, from the top-right corner


def _load(rel: str):
    from PIL import Image

    from interp.envs.assets import procgen_assets_dir

    with Image.open(procgen_assets_dir() / rel) as im:
        return im.convert("RGBA")


def _fit(img, w: int, h: int, scale: float) -> np.ndarray:
    """``img`` scaled (aspect kept) into ``scale`` of a w x h cell, centred; RGBA (h, w, 4)."""
    from PIL import Image

    s = min(w * scale / img.width, h * scale / img.height)
    sw, sh = max(1, round(img.width * s)), max(1, round(img.height * s))
    cell = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    cell.alpha_composite(img.resize((sw, sh), Image.LANCZOS), ((w - sw) // 2, (h - sh) // 2))
    return np.asarray(cell)


class Sprites:
    """Everything drawn, for one world size: the cell layout of the 64x64 frame (cells are
    floor(64/world) or ceil(64/world) pixels), the wall texture, the backgrounds, and object
    patches padded to a fixed window so that all envs' objects are drawn in one gather."""

    def __init__(self, world: int):
        from PIL import Image

        from interp.envs.assets import procgen_assets_dir

        edges = np.round(np.linspace(0, FRAME, world + 1)).astype(int)
        sizes = np.diff(edges)
        self.world, self.window = world, int(sizes.max())
        self.classes = sorted(set(sizes.tolist()))
        size_class = np.array([self.classes.index(s) for s in sizes])
        pad = np.minimum(np.arange(self.window)[None, :], sizes[:, None] - 1)
        self.col_px = edges[:-1, None] + pad  # (world, window): pixel columns of cell x
        self.col_class = size_class
        # screen rows run top-down; cell y = 0 is the bottom row
        self.row_px = (edges[:-1, None] + pad)[::-1]  # (world, window): pixel rows of cell y
        self.row_class = size_class[::-1]
        self.cell_of_px = np.repeat(np.arange(world), sizes)  # pixel -> cell column / screen row
        sheets = {k: _load(v) for k, v in SPRITES.items()}
        self.patches = {}  # name -> (classes, classes, window, window, 4): [h class, w class]
        for name in ("key", "chest", "agent"):
            p = np.zeros((len(self.classes),) * 2 + (self.window, self.window, 4), np.uint8)
            for i, h in enumerate(self.classes):
                for j, w in enumerate(self.classes):
                    cell = _fit(sheets[name], w, h, OBJECT_SCALE[name])
                    p[i, j] = cell[np.minimum(np.arange(self.window), h - 1)][
                        :, np.minimum(np.arange(self.window), w - 1)]
            self.patches[name] = p
        wall = np.zeros((FRAME, FRAME, 3), np.uint8)
        for cy in range(world):
            for cx in range(world):
                y, x = edges[cy], edges[cx]
                h, w = sizes[cy], sizes[cx]
                wall[y:y + h, x:x + w] = np.asarray(
                    sheets["wall"].convert("RGB").resize((w, h), Image.LANCZOS))
        self.wall = wall
        self.backgrounds = np.stack([
            np.asarray(_load(p.relative_to(procgen_assets_dir())).convert("RGB").resize(
                (FRAME, FRAME), Image.LANCZOS))
            for p in sorted((procgen_assets_dir() / BACKGROUNDS).glob("*.png"))])
        icon = sheets["key"].rotate(90, expand=True)
        self.icon = _fit(icon, ICON_W, ICON_H, 1.0)

    def base(self, grid: np.ndarray, background: int) -> np.ndarray:
        """The level without objects: background floor, textured walls."""
        screen = grid[::-1]  # screen row 0 is the top
        walls = screen[self.cell_of_px][:, self.cell_of_px]
        return np.where(walls[..., None], self.wall, self.backgrounds[background])

    def draw(self, frames: np.ndarray, env: np.ndarray, x: np.ndarray, y: np.ndarray,
             name: str) -> None:
        """Blend sprite ``name`` into the cells (x, y) of frames ``env`` (arrays of one length)."""
        if env.size == 0:
            return
        rows, cols = self.row_px[y], self.col_px[x]  # (m, window)
        patch = self.patches[name][self.row_class[y], self.col_class[x]]
        _blend(frames, env, rows, cols, patch)

    def draw_inventory(self, frames: np.ndarray, held: np.ndarray) -> None:
        """Key icons in the top-right corner, right to left, one per key held."""
        slots = np.arange(held.max(initial=0))
        env, slot = np.nonzero(slots[None, :] < held[:, None])
        if env.size == 0:
            return
        x0 = FRAME - ICON_W * (slot + 1)
        rows = np.broadcast_to(np.arange(ICON_H), (env.size, ICON_H))
        cols = x0[:, None] + np.arange(ICON_W)
        keep = cols[:, 0] >= 0
        patch = np.broadcast_to(self.icon, (env.size, ICON_H, ICON_W, 4))
        _blend(frames, env[keep], rows[keep], cols[keep], patch[keep])


def _blend(frames, env, rows, cols, patch) -> None:
    """Alpha-blend RGBA ``patch`` (m, h, w, 4) into ``frames`` at rows (m, h) x cols (m, w).
    Repeated pixel indices carry repeated patch pixels, so their writes agree."""
    idx = (env[:, None, None], rows[:, :, None], cols[:, None, :])
    under = frames[idx].astype(np.uint16)
    a = patch[..., 3:].astype(np.uint16)
    frames[idx] = ((under * (255 - a) + patch[..., :3] * a + 127) // 255).astype(np.uint8)


@lru_cache(maxsize=8)
def sprites(world: int) -> Sprites:
    return Sprites(world)
