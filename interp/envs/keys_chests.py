"""Keys and Chests (Langosco et al. 2022, Sec. 3.3, after Barnett 2019): a maze game of our own.

Heist's rules cannot be made into Keys and Chests by editing the stock engine's state
(consumable keys, chests that do not block, a reward per chest are game logic), so this is a
vectorized numpy game with :class:`~interp.envs.vecenv.VecEnv`'s interface, drawn with Heist's
sprites (loaded at runtime from the installed procgen package, never copied into the repo).

Rules, exactly (each tested with scripted agents in ``tests/test_keys_chests.py``):

* The agent moves at most one maze cell per step. Actions are Procgen's 15: 0-8 are
  (left/none/right) x (down/none/up) as in every Procgen game, 9-14 do nothing. A diagonal
  action moves horizontally if that cell is free, else vertically if that one is; walls and
  the world's edge block.
* The cell the agent enters is *touched*: a key there goes into the inventory; a chest there
  opens if the agent holds at least one key, using up one key (any key opens any chest), and
  pays reward 1. Keys pay nothing. Chests never block; a chest touched without a key stays.
* The episode ends on the step that opens chest number ``min(keys, chests)`` of the level
  (every chest opened, or every key used: nothing more can be earned; the level counts as
  complete), or after ``timeout`` steps. As in Procgen, the next level starts inside that step
  (``first`` is set with the new level's first frame).

Levels: a Kruskal maze of a random odd size from the ``maze_size`` range, at a random offset in
a world as large as the largest maze; the agent starts on a random free cell; keys and chests
lie on distinct other free cells. The whole world is the 64x64 view (as in the paper's fork,
which does not centre the agent); the keys held are drawn as upright key icons in the top-right
corner, right to left, one per key (Heist's key ring). Layout (maze, offset, start, background)
and the draw of the counts come from the level seed alone: the training and test presets of one
level seed share the maze and the start.

Options: ``keys`` / ``chests``: an int, a range ``[lo, hi]`` (uniform per level), or
``"<k>*chests"`` / ``"<k>*keys"`` (k times the other count, drawn first); ``maze_size``: an odd
int, a range ``[lo, hi]`` of odd sizes, or None (easy 5..9, hard 5..13, as the fork);
``timeout`` (1000 steps, Procgen's).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, fields
from math import comb

import numpy as np

from interp.envs.base import NUM_ACTIONS, EnvConfigError
from interp.envs.geometry import bfs, cell_labels, to_pixels
from interp.envs.maze import WALL, generate_maze
from interp.envs.state import InvalidStateError, StateFormatError

GAME = "keys-chests"
MAX_OBJECTS = 12  # keys and chests per level, each (label slots key0..key11, chest0..chest11)
TIMEOUT = 1000
MAZE_SIZES = {"easy": (5, 9), "hard": (5, 13)}  # the paper's fork: world 9 (easy) / 13 (hard)
LARGEST_MAZE = 25
CHEST_REWARD = 1.0  # as the paper's fork

EMPTY, KEY, CHEST = 0, 1, 2  # object codes in the cell grid; also nearest_object's codes
DEFAULTS = dict(keys=[1, 4], chests="2*keys", maze_size=None, timeout=TIMEOUT)
TEST_DEFAULTS = dict(DEFAULTS, keys="2*chests", chests=[1, 4])

# Procgen's action table: action a moves (a // 3 - 1, a % 3 - 1) for a < 9; 9-14 stand still
MOVES = np.array([(a // 3 - 1, a % 3 - 1) if a < 9 else (0, 0) for a in range(NUM_ACTIONS)])



# -- options ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Count:
    """A per-level count: uniform in ``lo..hi``, or ``times`` the other count."""

    lo: int = 0
    hi: int = 0
    times: int = 0

    def bounds(self, other: "Count") -> tuple[int, int]:
        return (self.times * other.lo, self.times * other.hi) if self.times else (self.lo, self.hi)


def _count(value, name: str, other: str) -> Count:
    if isinstance(value, str):
        m = re.fullmatch(rf"\s*(\d+)\s*\*\s*{other}\s*", value)
        if not m or int(m[1]) < 1:
            raise EnvConfigError(f"{name}={value!r}: use an int, a range [lo, hi], or "
                                 f"'<k>*{other}' with k >= 1 (e.g. '2*{other}')")
        return Count(times=int(m[1]))
    if isinstance(value, (list, tuple)) and len(value) == 2:
        lo, hi = value
    elif isinstance(value, int) and not isinstance(value, bool):
        lo = hi = value
    else:
        raise EnvConfigError(f"{name}={value!r}: use an int, a range [lo, hi], or "
                             f"'<k>*{other}' (e.g. '2*{other}')")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi)) \
            or not 1 <= lo <= hi:
        raise EnvConfigError(f"{name}={value!r}: use an int >= 1 or a range [lo, hi] of ints "
                             "with 1 <= lo <= hi")
    return Count(lo, hi)


@dataclass(frozen=True)
class Rules:
    """Validated options of a keys-chests env (:func:`rules`)."""

    keys: Count
    chests: Count
    maze_sizes: tuple[int, ...]  # odd sizes, drawn uniformly per level
    timeout: int

    @property
    def world(self) -> int:
        return self.maze_sizes[-1]

    def count_bounds(self) -> tuple[tuple[int, int], tuple[int, int]]:
        return self.keys.bounds(self.chests), self.chests.bounds(self.keys)

    def draw_counts(self, rng: np.random.Generator) -> tuple[int, int]:
        """(keys, chests) of one level: the count given as a range is drawn first."""
        first, second = (self.chests, self.keys) if self.keys.times else (self.keys, self.chests)
        a = int(rng.integers(first.lo, first.hi + 1))
        b = second.times * a if second.times else int(rng.integers(second.lo, second.hi + 1))
        return (b, a) if self.keys.times else (a, b)


def free_cells(maze_size: int) -> int:
    """Free cells of a Kruskal maze of odd size n: r*r rooms and r*r - 1 passages, r = (n+1)/2."""
    r = (maze_size + 1) // 2
    return 2 * r * r - 1


def rules(options: dict, distribution_mode: str = "easy") -> Rules:
    """Options -> :class:`Rules`; raises :class:`EnvConfigError` naming the fix."""
    if distribution_mode not in MAZE_SIZES:
        raise EnvConfigError(f"keys-chests has distribution modes {', '.join(MAZE_SIZES)} "
                             f"(got {distribution_mode!r})")
    keys, chests = _count(options["keys"], "keys", "chests"), _count(options["chests"],
                                                                    "chests", "keys")
    if keys.times and chests.times:
        raise EnvConfigError(f"keys={options['keys']!r} and chests={options['chests']!r} are "
                             "defined by each other: give one of them as an int or a range")
    size = options["maze_size"] if options["maze_size"] is not None \
        else list(MAZE_SIZES[distribution_mode])
    lo, hi = (size, size) if isinstance(size, int) and not isinstance(size, bool) else (
        tuple(size) if isinstance(size, (list, tuple)) and len(size) == 2 else (None, None))
    if not all(isinstance(v, int) and not isinstance(v, bool) and v % 2 == 1
               and 3 <= v <= LARGEST_MAZE for v in (lo, hi)) or lo > hi:
        raise EnvConfigError(f"maze_size={size!r}: use an odd int from 3 to {LARGEST_MAZE}, a "
                             "range [lo, hi] of odd sizes, or None (easy 5..9, hard 5..13)")
    timeout = options["timeout"]
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
        raise EnvConfigError(f"timeout={timeout!r}: use an int >= 1 (steps per episode)")
    out = Rules(keys, chests, tuple(range(lo, hi + 1, 2)), timeout)
    (_, kmax), (_, cmax) = out.count_bounds()
    for name, top in (("keys", kmax), ("chests", cmax)):
        if top > MAX_OBJECTS:
            raise EnvConfigError(f"{name}: up to {top} per level, more than the {MAX_OBJECTS} "
                                 f"this game supports; lower keys/chests")
    room = free_cells(lo) - 1  # the agent's cell is taken
    if kmax + cmax > room:
        raise EnvConfigError(f"up to {kmax} keys + {cmax} chests = {kmax + cmax} objects do not "
                             f"fit in a {lo}x{lo} maze ({room} free cells besides the agent's): "
                             "use fewer keys/chests or a larger smallest maze_size")
    return out


def check_options(options: dict, distribution_mode: str) -> None:
    """``Variant.check_options``."""
    rules(options, distribution_mode)


def mirror_options(options: dict) -> dict:
    """The mirror of a training env: the keys and chests options swapped (``2*keys`` chests
    become ``2*chests`` keys), everything else kept."""
    swap = {"keys": "chests", "chests": "keys"}

    def mirrored(value):
        return re.sub(r"keys|chests", lambda m: swap[m[0]], value) \
            if isinstance(value, str) else value

    return {**options, "keys": mirrored(options["chests"]), "chests": mirrored(options["keys"])}


# -- levels -------------------------------------------------------------------------------------
def generate_level(level_seed: int, r: Rules, num_backgrounds: int) -> dict:
    """One level as arrays: ``grid`` (world x world bool, True = wall, [y, x] with y = 0 the
    bottom row), ``agent`` (x, y), ``keys`` / ``chests`` ((n, 2) cells), ``maze`` (x0, y0,
    size) and ``background``. The maze, its offset, the start and the background come from
    one stream of the level seed, the counts and object cells from a second."""
    layout = np.random.default_rng([level_seed & 0xFFFFFFFF, 0])
    n = r.maze_sizes[layout.integers(len(r.maze_sizes))]
    x0, y0 = (int(v) for v in layout.integers(r.world - n + 1, size=2))
    grid = np.ones((r.world, r.world), bool)
    grid[y0:y0 + n, x0:x0 + n] = generate_maze(n, layout) == WALL
    free = np.argwhere(~grid)[:, ::-1]  # (x, y), bottom row first
    start = free[layout.integers(len(free))]
    background = int(layout.integers(num_backgrounds))
    objects = np.random.default_rng([level_seed & 0xFFFFFFFF, 1])
    nk, nc = r.draw_counts(objects)
    others = free[(free != start).any(1)]
    cells = others[objects.choice(len(others), nk + nc, replace=False)]
    return {"grid": grid, "agent": start, "keys": cells[:nk], "chests": cells[nk:],
            "maze": (x0, y0, n), "background": background}


def move_agents(grid: np.ndarray, agent: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """New cells (n, 2) of agents at ``agent`` (n, 2) in mazes ``grid`` (n, w, w) taking
    ``actions``: one cell, horizontally if that cell is free, else vertically if that one is."""
    moves = MOVES[np.asarray(actions, int)]
    w, env = grid.shape[-1], np.arange(len(agent))
    out, moved = agent.copy(), np.zeros(len(agent), bool)
    for axis in (0, 1):
        target = agent.copy()
        target[:, axis] += moves[:, axis]
        inside = ((target >= 0) & (target < w)).all(1)
        tx, ty = np.clip(target, 0, w - 1).T
        go = ~moved & (moves[:, axis] != 0) & inside & ~grid[env, ty, tx]
        out[go] = target[go]
        moved |= go
    return out


def shortest_solution(state: "KeysChestsState", max_states: int = 200_000) -> list | None:
    """The fewest-steps way to end the level from ``state`` by completing it: the objects to
    visit in order, as cells ``[(x, y), ...]`` (the steps: :func:`path_length`). None when the
    search would exceed ``max_states`` (levels with many keys and chests) or the level cannot
    be completed (objects walled off, in hand-made states).

    Exact: a dynamic programme over (objects visited, last object) with maze path lengths.
    Objects the agent passes on the way are touched too, which never delays completion
    (another key only helps; a chest opened on the way counts like the one planned), so the
    best visiting order over the object graph is the best over the game.
    """
    keys, chests = state.key_cells(), state.chest_cells()
    need = min(len(state.keys), len(state.chests)) - state.chests_opened
    if need <= 0:
        return []
    keys_needed = max(0, need - state.keys_held)
    nk, n = len(keys), len(keys) + len(chests)
    reachable = sum(comb(nk, a) for a in range(min(nk, keys_needed) + 1)) * sum(
        comb(len(chests), b) for b in range(need + 1))
    if reachable * n > max_states:
        return None
    nodes = [tuple(state.agent)] + keys + chests
    free = np.ascontiguousarray(~state.grid)
    maps = [bfs(free.tobytes(), *free.shape, x, y) for x, y in nodes]
    dist = np.array([[m[y, x] for x, y in nodes] for m in maps], np.int64)
    unreachable = np.iinfo(np.int32).max  # walled-off objects (hand-made states only)
    dist[dist < 0] = unreachable
    is_key = np.arange(n) < nk
    bit = np.int64(1) << np.arange(n, dtype=np.int64)
    # one frontier per number of objects visited: visited mask, last node (0 = the start),
    # keys and chests visited, cost, index of the parent in the previous frontier
    one = lambda v: np.array([v], np.int64)  # noqa: E731
    layers = [(one(0), one(0), one(0), one(0), one(0), one(-1))]
    best = (np.iinfo(np.int64).max, -1, -1)  # cost, layer, index in it
    while layers[-1][0].size:
        mask, node, k, c, cost, _ = layers[-1]
        allowed = ((mask[:, None] & bit) == 0) & np.where(
            is_key, (k < keys_needed)[:, None], (state.keys_held + k - c > 0)[:, None])
        s, j = np.nonzero(allowed)
        new = (mask[s] | bit[j], j + 1, k[s] + is_key[j], c[s] + ~is_key[j],
               cost[s] + dist[node[s], j + 1], s)
        ident = new[0] * (n + 1) + new[1]  # keep the cheapest way to each (mask, last)
        order = np.lexsort((new[4], ident))
        order = order[np.r_[True, ident[order][1:] != ident[order][:-1]]] if order.size \
            else order
        layer = tuple(v[order] for v in new)
        layers.append(layer)
        done = np.flatnonzero(layer[3] == need)
        if done.size and layer[4][done].min() < best[0]:
            i = done[np.argmin(layer[4][done])]
            best = (int(layer[4][i]), len(layers) - 1, int(i))
        if done.size:  # every completion visits the same number of objects
            break
    cost, at, i = best
    if cost >= unreachable:
        return None
    plan = []
    while at > 0:
        plan.append(nodes[int(layers[at][1][i])])
        i, at = int(layers[at][5][i]), at - 1
    return plan[::-1]


def path_length(state: "KeysChestsState", cells: list) -> int:
    """Steps of the shortest walk from the agent's cell through ``cells`` in order."""
    free = np.ascontiguousarray(~state.grid)
    total, here = 0, tuple(state.agent)
    for x, y in cells:
        total += int(bfs(free.tobytes(), *free.shape, x, y)[here[1], here[0]])
        here = (x, y)
    return total


# -- state --------------------------------------------------------------------------------------
STATE_MAGIC = b"KCS1"


@dataclass
class KeysChestsState:
    """One env's game state: plain values and small arrays a planner can read.

    ``grid[y, x]`` is True on walls (y = 0 the bottom row); ``keys`` / ``chests`` are
    ``(n, 3)`` int arrays of (x, y, present) in the order the level placed them (label slots
    ``key<i>`` / ``chest<i>``); ``agent`` is the agent's cell. ``state["view_dim"]``,
    ``["center_x"]``, ``["center_y"]`` and ``player`` give the view geometry of the stock
    states, so :func:`interp.envs.labels.to_pixels` works on it.
    """

    world_dim: int
    timeout: int
    grid: np.ndarray
    agent: tuple[int, int]
    keys: np.ndarray
    chests: np.ndarray
    keys_held: int = 0
    keys_collected: int = 0
    chests_opened: int = 0
    cur_time: int = 0
    current_level_seed: int = 0
    prev_level_seed: int = 0
    prev_level_complete: bool = False
    background: int = 0
    maze: tuple[int, int, int] = (0, 0, 0)  # x0, y0, size of the maze inside the world
    env_seed: int = 0  # the env's level sequence: level i of env (env_seed, env_index)
    env_index: int = 0
    level_index: int = 0
    reward: float = 0.0  # of the last step, as observe() reports it
    first: bool = True
    game: str = field(default=GAME, init=False)

    # -- dict-style access of the stock GameState (used by generic tools) --------------------
    def __getitem__(self, name: str):
        if name == "view_dim":
            return float(self.world_dim)
        if name in ("center_x", "center_y"):
            return self.world_dim / 2
        if name in self._names():
            return getattr(self, name)
        raise KeyError(f"{name!r} is not a field of a keys-chests state")

    def __setitem__(self, name: str, value) -> None:
        if name not in self._names():
            raise KeyError(f"{name!r} is not a field of a keys-chests state")
        setattr(self, name, value)

    @classmethod
    def _names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    @property
    def player(self) -> dict:
        """The agent as the stock states' player entity: centre, velocity, half-size."""
        return {"x": self.agent[0] + 0.5, "y": self.agent[1] + 0.5, "vx": 0.0, "vy": 0.0,
                "rx": 0.375, "ry": 0.375}

    def key_cells(self) -> list[tuple[int, int]]:
        """Cells of the keys still lying in the level."""
        return [(int(x), int(y)) for x, y, present in self.keys if present]

    def chest_cells(self) -> list[tuple[int, int]]:
        """Cells of the chests not yet opened."""
        return [(int(x), int(y)) for x, y, present in self.chests if present]

    def copy(self) -> "KeysChestsState":
        return KeysChestsState(**{f.name: getattr(self, f.name) for f in fields(self)
                                  if f.init} | {"grid": self.grid.copy(),
                                                "keys": self.keys.copy(),
                                                "chests": self.chests.copy()})

    def to_bytes(self) -> bytes:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        d["grid"] = ["".join("#" if w else "." for w in row) for row in self.grid]
        d["keys"], d["chests"] = self.keys.tolist(), self.chests.tolist()
        d["agent"], d["maze"] = [int(v) for v in self.agent], [int(v) for v in self.maze]
        return STATE_MAGIC + json.dumps(d, default=_plain).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> "KeysChestsState":
        if not raw.startswith(STATE_MAGIC):
            raise StateFormatError("not a keys-chests state (states only move between envs of "
                                   "the same game)")
        try:
            d = json.loads(raw[len(STATE_MAGIC):])
            d["grid"] = np.array([[c == "#" for c in row] for row in d["grid"]], bool)
            for k in ("keys", "chests"):
                d[k] = np.array(d[k], dtype=np.int64).reshape(-1, 3)
            d["agent"], d["maze"] = tuple(d["agent"]), tuple(d["maze"])
            return cls(**d)
        except (ValueError, TypeError, KeyError) as e:
            raise StateFormatError(f"corrupt keys-chests state: {e}") from None

    def validate(self, world: int, timeout: int) -> None:
        """Raise :class:`InvalidStateError` unless this state fits an env of that world size
        and timeout and is a state the rules can reach."""
        w = self.world_dim
        problems = []
        if (w, self.timeout) != (world, timeout):
            problems.append(f"world {w} / timeout {self.timeout} differ from this env's "
                            f"{world} / {timeout} (states only move between envs made with "
                            "the same options)")
        elif self.grid.shape != (w, w):
            problems.append(f"grid is {self.grid.shape}, not {w}x{w}")
        else:
            cells = [("agent", np.array([[*self.agent, 1]]))] + [
                (k, getattr(self, k)) for k in ("keys", "chests")]
            for name, arr in cells:
                if len(arr) > MAX_OBJECTS or ((arr[:, :2] < 0) | (arr[:, :2] >= w)).any():
                    problems.append(f"{name}: more than {MAX_OBJECTS} or outside the world")
                elif self.grid[arr[:, 1], arr[:, 0]].any():
                    problems.append(f"{name} on a wall")
            placed = [c for _, a in cells[1:] for c in map(tuple, a[a[:, 2] > 0, :2])]
            if len(placed) != len(set(placed)):
                problems.append("two objects share a cell")
            if tuple(self.agent) in self.key_cells():  # (it may stand on a chest: no key)
                problems.append("the agent stands on a key it would have collected")
            counts = (self.keys_held, self.keys_collected, self.chests_opened, self.cur_time)
            if min(counts) < 0 or self.keys_held > self.keys_collected:
                problems.append("negative counts, or more keys held than collected")
            if self.chests_opened >= min(len(self.keys), len(self.chests)):
                problems.append("the level is already complete (no chest left to open with "
                                "a key)")
        if problems:
            raise InvalidStateError("invalid keys-chests state: " + "; ".join(problems))


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"cannot store {type(v).__name__} in a keys-chests state")


# -- labels -------------------------------------------------------------------------------------
def _slots(prefix: str, objects: np.ndarray) -> dict:
    out = {}
    for i in range(MAX_OBJECTS):
        here = i < len(objects) and objects[i, 2]
        out[f"{prefix}{i}_x"] = int(objects[i, 0]) if here else -1
        out[f"{prefix}{i}_y"] = int(objects[i, 1]) if here else -1
    return out


def state_labels(state: KeysChestsState) -> dict:
    """The keys-chests labels of one state, except ``goal_touched`` (see ``LABEL_DOCS``):
    the goal is the nearest chest, the distractor the nearest key (by maze path length)."""
    ax, ay = (int(v) for v in state.agent)
    free = np.ascontiguousarray(~state.grid)
    dist = bfs(free.tobytes(), *free.shape, ax, ay)
    nearest = {}
    for name, objects in (("key", state.keys), ("chest", state.chests)):
        left = objects[objects[:, 2] > 0]
        d = dist[left[:, 1], left[:, 0]] if len(left) else np.zeros(0, int)
        left, d = left[d >= 0], d[d >= 0]  # (walled-off objects: hand-made states only)
        k = int(np.argmin(d)) if len(d) else -1  # the first placed wins a tie
        nearest[name] = ((int(left[k, 0]), int(left[k, 1])), int(d[k])) if k >= 0 \
            else (None, -1)
    (kc, kd), (cc, cd) = nearest["key"], nearest["chest"]
    kind = EMPTY if kc is None and cc is None else KEY if cc is None or (
        kc is not None and kd <= cd) else CHEST
    px, py = to_pixels(state, ax + 0.5, ay + 0.5)
    out = {"level_seed": state.current_level_seed, "step": state.cur_time,
           "agent_x": ax + 0.5, "agent_y": ay + 0.5, "agent_vx": 0.0, "agent_vy": 0.0,
           "agent_px": px, "agent_py": py, "goal_touched": 0,
           **cell_labels("goal", cc), **cell_labels("distractor", kc), "goal_visible": 1,
           "agent_cell_x": ax, "agent_cell_y": ay,
           "keys_held": state.keys_held, "keys_left": int(state.keys[:, 2].sum()),
           "chests_left": int(state.chests[:, 2].sum()), "keys_collected": state.keys_collected,
           "chests_opened": state.chests_opened, "num_keys": len(state.keys),
           "num_chests": len(state.chests), "nearest_object": kind,
           "dist_to_nearest_key": kd, "dist_to_nearest_chest": cd,
           **_slots("key", state.keys), **_slots("chest", state.chests)}
    return out
