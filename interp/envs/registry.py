"""The variants and games by name. The built-in ones are registered by
:mod:`interp.envs.variants`, which importing the package runs; add your own with
:func:`register` and :func:`register_game`."""

from __future__ import annotations

import difflib

from interp.envs.base import EnvConfigError, Game, Variant

_REGISTRY: dict[str, Variant] = {}
_GAMES: dict[str, Game] = {}


def register(variant: Variant) -> Variant:
    if variant.name in _REGISTRY:
        raise ValueError(f"variant {variant.name!r} registered twice")
    _REGISTRY[variant.name] = variant
    return variant


def list_variants() -> list[Variant]:
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_variant(name: str) -> Variant:
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise EnvConfigError(
            f"unknown env variant {name!r}.{hint} `interp envs list` shows all "
            f"{len(_REGISTRY)} variants.")
    return _REGISTRY[name]


def register_game(game: Game) -> Game:
    if game.name in _GAMES:
        raise ValueError(f"game {game.name!r} registered twice")
    _GAMES[game.name] = game
    return game


def get_game(name: str) -> Game:
    """The registered :class:`~interp.envs.base.Game`; a game nobody registered is scored by
    success, return and length alone."""
    return _GAMES.get(name) or Game(name)
