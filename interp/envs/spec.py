"""The env spec: everything needed to rebuild an environment, validated on creation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from interp.envs.base import DISTRIBUTION_MODES, MODE_GAMES, EnvConfigError, Outcomes, Variant
from interp.envs.registry import get_game, get_variant


@dataclass(frozen=True)
class EnvSpec:
    """Everything needed to rebuild an environment; stored in checkpoints and recordings."""

    variant: str
    distribution_mode: str = "easy"
    num_levels: int = 0
    start_level: int = 0
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        variant = get_variant(self.variant)
        if self.distribution_mode not in DISTRIBUTION_MODES:
            raise EnvConfigError(f"distribution_mode {self.distribution_mode!r} is not one of "
                                 f"{', '.join(DISTRIBUTION_MODES)}")
        games = MODE_GAMES.get(self.distribution_mode)
        if variant.engine is None and games is not None and variant.game not in games:
            usable = [m for m in DISTRIBUTION_MODES
                      if m not in MODE_GAMES or variant.game in MODE_GAMES[m]]
            raise EnvConfigError(f"distribution_mode {self.distribution_mode!r} is not available "
                                 f"for {self.variant} ({variant.game}); use one of "
                                 f"{', '.join(usable)}")
        if self.num_levels < 0 or self.start_level < 0:
            raise EnvConfigError("num_levels and start_level must be >= 0 (0 levels = unlimited)")
        unknown = set(self.options) - set(variant.defaults)
        if unknown:
            allowed = ", ".join(sorted(variant.defaults)) or "none"
            raise EnvConfigError(f"variant {self.variant!r} has no option(s) "
                                 f"{', '.join(sorted(unknown))}; its options: {allowed}")
        if variant.check_options:
            variant.check_options(self.resolved_options(), self.distribution_mode)

    def get_variant(self) -> Variant:
        """The :class:`~interp.envs.base.Variant` this spec names."""
        return get_variant(self.variant)

    def resolved_options(self) -> dict:
        return {**self.get_variant().defaults, **self.options}

    def outcomes(self) -> tuple[Outcomes, ...]:
        """The outcome families runs of this spec are scored by: its game's, then its
        variant's, those whose ``when`` holds for the resolved options."""
        variant, options = self.get_variant(), self.resolved_options()
        return tuple(o for o in get_game(variant.game).outcomes + variant.outcomes
                     if o.when is None or o.when(options))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EnvSpec":
        allowed = {"variant", "distribution_mode", "num_levels", "start_level", "options"}
        unknown = set(d) - allowed
        if unknown or "variant" not in d:
            raise EnvConfigError(f"env spec needs 'variant' and may have {sorted(allowed)}; "
                                 f"got {sorted(d)}")
        return cls(**{**d, "options": dict(d.get("options") or {})})
