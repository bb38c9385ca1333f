"""Byte-exact parser and writer of the stock Procgen engine's serialized game state.

``ProcgenGym3Env.callmethod("get_state")`` returns one ``bytes`` per env. :func:`parse_state`
turns it into a :class:`GameState` whose scalar fields, entity table and tile grid can be
read and edited; :meth:`GameState.to_bytes` writes it back. The layout (little-endian int32 /
float32, strings as length + bytes) is documented in ``docs/engine-state.md``. Maze, coinrun
and heist have their game-specific tail parsed; other games keep it as raw bytes.

Writing a state back into the engine goes through :func:`validate` first: the engine aborts
the whole process (no Python exception) on e.g. an unknown tile id or a missing player.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from interp.errors import InterpError

END_MARKER = 0xCAFECAFE
SPACE = 100
MAX_TILE = 100  # tile ids > 100 hit a fassert in the engine
PLAYER = 0

_GAME_INTS = (
    "paint_vel_info use_generated_assets use_monochrome_assets restrict_themes use_backgrounds "
    "center_agent debug_mode distribution_mode use_sequential_levels use_easy_jump plain_assets "
    "physics_mode grid_step level_seed_low level_seed_high game_type game_n"
).split()

# (name, kind) with kind in i (int32), f (float32), s (string), r (RandGen)
_GAME_FIELDS = (
    [("version", "i"), ("game_name", "s")]
    + [(n, "i") for n in _GAME_INTS]
    + [("level_seed_rand_gen", "r"), ("rand_gen", "r"), ("reward", "f")]
    + [(n, "i") for n in "done level_complete action timeout current_level_seed prev_level_seed "
       "episodes_remaining episode_done last_reward_timer".split()]
    + [("last_reward", "f")]
    + [(n, "i") for n in "default_action fixed_asset_seed cur_time is_waiting_for_step".split()]
)

_BASIC_FIELDS_AFTER_ENTITIES = (
    [("use_procgen_background", "i"), ("background_index", "i"), ("bg_tile_ratio", "f"),
     ("bg_pct_x", "f"), ("char_dim", "f"), ("last_move_action", "i"), ("move_action", "i"),
     ("special_action", "i")]
    + [(n, "f") for n in "mixrate maxspeed max_jump action_vx action_vy action_vrot center_x "
       "center_y".split()]
    + [("random_agent_start", "i"), ("has_useful_vel_info", "i"), ("step_rand_int", "i"),
       ("asset_rand_gen", "r"), ("main_width", "i"), ("main_height", "i"),
       ("out_of_bounds_object", "i")]
    + [(n, "f") for n in "unit view_dim x_off y_off visibility min_visibility".split()]
)

_TAILS = {
    "maze": [("maze_dim", "i"), ("world_dim", "i")],
    "coinrun": [("last_agent_y", "f"), ("wall_theme", "i"), ("has_support", "i"),
                ("facing_right", "i"), ("is_on_crate", "i"), ("gravity", "f"),
                ("air_control", "f")],
    "heist": [("num_keys", "i"), ("world_dim", "i"), ("has_keys", "v")],
}

ENTITY_DTYPE = np.dtype(
    [(n, "<f4") for n in "x y vx vy rx ry".split()]
    + [(n, "<i4") for n in "type image_type image_theme render_z will_erase "
       "collides_with_entities".split()]
    + [(n, "<f4") for n in "collision_margin rotation vrot".split()]
    + [(n, "<i4") for n in "is_reflected fire_time spawn_time life_time expire_time "
       "use_abs_coords".split()]
    + [("friction", "<f4")]
    + [(n, "<i4") for n in "smart_step avoids_collisions auto_erase".split()]
    + [(n, "<f4") for n in "alpha health theta grow_rate alpha_decay climber_spawn_x".split()]
)
assert ENTITY_DTYPE.itemsize == 124


class StateFormatError(InterpError, ValueError):
    """The bytes are not a state of the stock engine in the layout we know."""


class InvalidStateError(InterpError, ValueError):
    """An edited state the engine would abort on; raised before it reaches ``set_state``."""


def _compile(spec: list[tuple[str, str]]) -> list[tuple]:
    """Group runs of int32/float32 fields into one struct each: ~10x faster than per field.

    Returns steps ("fixed", Struct, names) or (kind, name) for strings, RandGens and vectors.
    """
    steps: list[tuple] = []
    fmt, names = "", []
    for name, kind in spec + [("", "end")]:
        if kind in ("i", "f"):
            fmt, names = fmt + kind, names + [name]
            continue
        if fmt:
            steps.append(("fixed", struct.Struct("<" + fmt), tuple(names)))
            fmt, names = "", []
        if kind != "end":
            steps.append((kind, name))
    return steps


class _Reader:
    def __init__(self, raw: bytes):
        self.raw, self.pos = raw, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.raw):
            raise StateFormatError(f"state truncated at byte {self.pos} (needs {n} more)")
        out = self.raw[self.pos:self.pos + n]
        self.pos += n
        return out

    def i(self) -> int:
        return struct.unpack("<i", self.take(4))[0]

    def s(self) -> bytes:
        n = self.i()
        if not 0 <= n <= len(self.raw):
            raise StateFormatError(f"bad string length {n} at byte {self.pos - 4}")
        return self.take(n)

    def r(self) -> tuple[int, bytes]:
        return self.i(), self.s()

    def v(self) -> list[int]:
        n = self.i()
        if not 0 <= n <= len(self.raw) // 4:
            raise StateFormatError(f"bad vector length {n} at byte {self.pos - 4}")
        return list(struct.unpack(f"<{n}i", self.take(4 * n)))

    def read_into(self, program: list[tuple], out: dict) -> None:
        for kind, *arg in program:
            if kind == "fixed":
                fmt, names = arg
                out.update(zip(names, fmt.unpack(self.take(fmt.size))))
            else:
                out[arg[0]] = getattr(self, kind)()


def _write_into(program: list[tuple], values: dict, out: list[bytes]) -> None:
    for kind, *arg in program:
        if kind == "fixed":
            fmt, names = arg
            out.append(fmt.pack(*(values[n] for n in names)))
            continue
        value = values[arg[0]]
        if kind == "s":
            out.append(struct.pack("<i", len(value)) + value)
        elif kind == "r":
            seeded, text = value
            out.append(struct.pack("<ii", seeded, len(text)) + text)
        else:  # "v"
            out.append(struct.pack(f"<i{len(value)}i", len(value), *value))


_GAME_PROGRAM = _compile(_GAME_FIELDS)
_BASIC_PROGRAM = _compile(_BASIC_FIELDS_AFTER_ENTITIES)
_TAIL_PROGRAMS = {game: _compile(spec) for game, spec in _TAILS.items()}


@dataclass
class GameState:
    """One env's parsed state.

    ``fields`` holds every scalar in layout order (ints, floats, ``bytes`` strings, RandGen
    tuples). ``entities`` is a structured array (``ENTITY_DTYPE``), ``grid[y, x]`` the tile ids
    with **y = 0 the bottom row**. ``tail`` holds a parsed game tail, or ``raw_tail`` the bytes
    of a game whose tail we do not parse.
    """

    fields: dict
    entities: np.ndarray
    grid: np.ndarray
    tail: dict = field(default_factory=dict)
    raw_tail: bytes | None = None

    @property
    def game(self) -> str:
        return self.fields["game_name"].decode()

    def __getitem__(self, name: str):
        return self.tail[name] if name in self.tail else self.fields[name]

    def __setitem__(self, name: str, value) -> None:
        if name in self.tail:
            self.tail[name] = value
        elif name in self.fields:
            self.fields[name] = value
        else:
            raise KeyError(f"{name!r} is not a field of a {self.game} state")

    @property
    def player(self) -> np.void:
        idx = np.flatnonzero(self.entities["type"] == PLAYER)
        if idx.size == 0:
            raise InvalidStateError("state has no player entity")
        return self.entities[idx[0]]

    def copy(self) -> "GameState":
        return GameState(dict(self.fields), self.entities.copy(), self.grid.copy(),
                         dict(self.tail), self.raw_tail)

    def to_bytes(self) -> bytes:
        out: list[bytes] = []
        _write_into(_GAME_PROGRAM, self.fields, out)
        out.append(struct.pack("<i", self.fields["grid_size"]))
        ents = np.ascontiguousarray(self.entities, dtype=ENTITY_DTYPE)
        out.append(struct.pack("<i", len(ents)) + ents.tobytes())
        _write_into(_BASIC_PROGRAM, self.fields, out)
        h, w = self.grid.shape
        cells = np.ascontiguousarray(self.grid, dtype="<i4").ravel()
        out.append(struct.pack("<iii", w, h, cells.size) + cells.tobytes())
        if self.raw_tail is not None:
            out.append(self.raw_tail)
        else:
            _write_into(_TAIL_PROGRAMS[self.game], self.tail, out)
        out.append(struct.pack("<I", END_MARKER))
        return b"".join(out)


def parse_state(raw: bytes) -> GameState:
    """Parse one env's ``get_state`` bytes; raises :class:`StateFormatError` on bad input."""
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise StateFormatError(f"expected bytes from get_state, got {type(raw).__name__}")
    raw = bytes(raw)
    rd = _Reader(raw)
    fields = {}
    rd.read_into(_GAME_PROGRAM, fields)
    if fields["version"] != 0:
        raise StateFormatError(f"unknown state version {fields['version']} (expected 0)")
    fields["grid_size"] = rd.i()
    n_ent = rd.i()
    if not 0 <= n_ent <= len(raw) // ENTITY_DTYPE.itemsize:
        raise StateFormatError(f"bad entity count {n_ent}")
    entities = np.frombuffer(rd.take(n_ent * ENTITY_DTYPE.itemsize), dtype=ENTITY_DTYPE).copy()
    rd.read_into(_BASIC_PROGRAM, fields)
    w, h, count = struct.unpack("<iii", rd.take(12))
    if w * h != count or count < 0:
        raise StateFormatError(f"grid {w}x{h} does not match its cell count {count}")
    grid = np.frombuffer(rd.take(4 * count), dtype="<i4").reshape(h, w).copy()
    game = fields["game_name"].decode(errors="replace")
    tail, raw_tail = {}, None
    if game in _TAILS:
        rd.read_into(_TAIL_PROGRAMS[game], tail)
    else:
        raw_tail = raw[rd.pos:len(raw) - 4]
        rd.pos = len(raw) - 4
    marker = struct.unpack("<I", rd.take(4))[0]
    if marker != END_MARKER or rd.pos != len(raw):
        raise StateFormatError(
            f"{game} state does not end with the end marker where expected "
            f"(byte {rd.pos} of {len(raw)}): is this the stock procgen 0.10.7 engine?")
    return GameState(fields, entities, grid, tail, raw_tail)


def validate(state: GameState, game: str | None = None) -> None:
    """Raise :class:`InvalidStateError` for anything the engine would abort on."""
    if game is not None and state.game != game:
        raise InvalidStateError(
            f"state is from {state.game!r} but the env runs {game!r}: states cannot move "
            "between games")
    if not np.any(state.entities["type"] == PLAYER):
        raise InvalidStateError("state has no player entity (type 0); the engine would abort")
    bad = state.grid[(state.grid > MAX_TILE)]
    if bad.size:
        raise InvalidStateError(
            f"tile ids {sorted(set(bad.tolist()))[:5]} exceed {MAX_TILE}; the engine would "
            "abort. Use ids <= 100 (negative ids draw like their positive id but are inert)")
    gh, gw = state.grid.shape
    if gh != state["main_height"] or gw != state["main_width"]:
        raise InvalidStateError(
            f"grid is {gw}x{gh} but the state says {state['main_width']}x{state['main_height']}")
    if state.game == "heist":
        themes = state.entities["image_theme"][np.isin(state.entities["type"], (1, 2))]
        if themes.size and themes.max() >= 3:
            raise InvalidStateError("heist keys/doors have 3 colours (themes 0-2); the engine "
                                    f"segfaults on theme {int(themes.max())}")
