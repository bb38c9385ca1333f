"""Training configuration: YAML files in ``configs/train/`` loaded into a :class:`TrainConfig`.

A YAML file has the sections ``env``, ``model``, ``ppo`` and ``run`` (all optional) and may
name a parent with ``inherit:`` (alias ``preset:``): a file name resolved next to the child,
then in ``configs/train/``. The child is merged over the parent section by section. Env
variant names are checked when training starts (:meth:`TrainConfig.env_spec`), not on load.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from configs import CONFIG_DIR
from interp.errors import InterpError

PRESET_DIR = CONFIG_DIR / "train"
# Keys that may change between the chunks of one run without changing its results' meaning.
RUNTIME_KEYS = frozenset({"run.device", "run.compile", "run.env_threads", "run.log_every"})


class ConfigError(InterpError, ValueError):
    """A config file or value that cannot be used; the message names the key."""


@dataclass
class PPOConfig:
    """PPO hyperparameters (defaults: the papers' "easy" preset, train-procgen-pytorch)."""

    num_envs: int = 64
    num_steps: int = 256
    epochs: int = 3
    num_minibatches: int = 8
    # Gradient accumulation: split each minibatch into chunks of this size (memory only;
    # the update is the same). null = whole minibatch at once.
    microbatch_size: int | None = None
    gamma: float = 0.999
    gae_lambda: float = 0.95
    lr: float = 5e-4
    anneal_lr: bool = True
    adam_eps: float = 1e-5
    clip: float = 0.2
    clip_value_loss: bool = True
    value_coef: float = 0.5
    entropy_coef: float = 0.01
    max_grad_norm: float = 0.5
    norm_adv: bool = True
    norm_reward: bool = True
    # Return-std normalisation as baselines' VecNormalize (train-procgen-pytorch keeps its
    # default discount 0.99 here, not the PPO gamma) and its clip of 10.
    reward_norm_gamma: float = 0.99
    reward_clip: float = 10.0

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.num_minibatches

    def check(self) -> None:
        _positive(self, "ppo", "num_envs", "num_steps", "epochs", "num_minibatches", "lr",
                  "adam_eps", "clip", "max_grad_norm", "reward_clip")
        _nonneg(self, "ppo", "value_coef", "entropy_coef")
        for name in ("gamma", "gae_lambda", "reward_norm_gamma"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"ppo.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.batch_size % self.num_minibatches:
            raise ConfigError(f"ppo.num_minibatches ({self.num_minibatches}) must divide "
                              f"num_envs * num_steps ({self.batch_size})")
        mb = self.microbatch_size
        if mb is not None and (mb < 1 or self.minibatch_size % mb):
            raise ConfigError(f"ppo.microbatch_size ({mb}) must divide the minibatch size "
                              f"({self.minibatch_size} = {self.batch_size} / "
                              f"{self.num_minibatches})")


@dataclass
class RunConfig:
    """Length, seeding, hardware and bookkeeping of a run (steps are env steps)."""

    total_steps: int = 25_000_000
    seed: int = 0
    device: str = "auto"  # auto | cuda | cpu | cuda:N
    compile: bool = False  # torch.compile the conv trunk
    amp: bool = True  # bf16 autocast for the conv trunk where native (CUDA; AVX512-BF16/AMX CPUs)
    env_groups: int = 1  # >1: step one group of envs while the policy runs on the next
    env_threads: int = 0  # Procgen worker threads per group; 0 = cores / env_groups
    checkpoint_every: int = 1_000_000  # 0 = only at the end
    log_every: int = 0  # 0 = every rollout
    eval_every: int = 0  # evaluate eval_variants every N steps and at the end (0: end only)
    eval_variants: list = field(default_factory=list)  # variant names or env-spec dicts
    eval_episodes: int = 256
    eval_envs: int = 64
    eval_seed: int = 1
    # Start from this agent's weights (a fresh optimizer; steps count from 0): continue
    # training a bundled agent, or fine-tune it on another distribution.
    init_from: str | None = None

    def check(self) -> None:
        _positive(self, "run", "total_steps", "env_groups", "eval_episodes", "eval_envs")
        _nonneg(self, "run", "seed", "env_threads", "checkpoint_every", "log_every",
                "eval_every", "eval_seed")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"run.device must be auto, cpu, cuda or cuda:N, got "
                              f"{self.device!r}")
        for i, v in enumerate(self.eval_variants):
            if not isinstance(v, (str, dict)):
                raise ConfigError(f"run.eval_variants[{i}] must be a variant name or an env "
                                  f"spec mapping, got {type(v).__name__}")


@dataclass
class TrainConfig:
    """Everything a training run needs; ``env`` and ``model`` stay dicts (EnvSpec/ModelConfig)."""

    env: dict = field(default_factory=lambda: {"variant": "coinrun"})
    model: dict = field(default_factory=lambda: {"arch": "impala", "width": 1})
    ppo: PPOConfig = field(default_factory=PPOConfig)
    run: RunConfig = field(default_factory=RunConfig)
    description: str = ""

    def check(self) -> None:
        from interp.models import ModelConfig

        env_keys = {"variant", "distribution_mode", "num_levels", "start_level", "options"}
        _check_keys(self.env, env_keys, "env")
        if not isinstance(self.env.get("variant"), str):
            raise ConfigError("env.variant must be set to a variant name "
                              "(`interp envs list` shows them)")
        try:
            recurrent = ModelConfig.from_dict(self.model).recurrent
        except (TypeError, ValueError) as e:
            raise ConfigError(f"model: {e}") from None
        if recurrent:
            raise ConfigError("model.gru_hidden: the trainer trains feed-forward agents only; "
                              "recurrent agents trained elsewhere load and run everywhere")
        self.ppo.check()
        self.run.check()
        if self.ppo.num_envs % self.run.env_groups:
            raise ConfigError(f"run.env_groups ({self.run.env_groups}) must divide "
                              f"ppo.num_envs ({self.ppo.num_envs})")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        config = _build(cls, data, "")
        config.check()
        return config

    def with_overrides(self, *, steps: int | None = None, seed: int | None = None,
                       device: str | None = None) -> "TrainConfig":
        """A copy with CLI overrides (--steps/--seed/--device) applied and checked."""
        d = self.to_dict()
        for key, value in (("total_steps", steps), ("seed", seed), ("device", device)):
            if value is not None:
                d["run"][key] = value
        return TrainConfig.from_dict(d)

    @property
    def total_steps(self) -> int:
        """``run.total_steps`` rounded up to whole rollouts: the steps a run actually trains."""
        return -(-self.run.total_steps // self.ppo.batch_size) * self.ppo.batch_size

    def env_spec(self):
        """The training :class:`~interp.envs.EnvSpec` (raises EnvConfigError if unknown)."""
        from interp.envs import EnvSpec

        return EnvSpec.from_dict(self.env)

    def eval_specs(self) -> dict:
        """``{label: EnvSpec}`` for ``run.eval_variants``; they inherit the training
        distribution_mode and use all levels (num_levels 0) unless they say otherwise. On the
        training variant they also inherit the training options (an entry's own override)."""
        from interp.envs import EnvSpec

        specs = {}
        for v in self.run.eval_variants:
            d = {"variant": v} if isinstance(v, str) else dict(v)
            d.setdefault("distribution_mode", self.env.get("distribution_mode", "easy"))
            if d.get("variant") == self.env.get("variant"):
                d["options"] = {**(self.env.get("options") or {}), **(d.get("options") or {})}
            label = str(d.get("variant"))
            specs[label if label not in specs else f"{label}#{len(specs)}"] = EnvSpec.from_dict(d)
        return specs

    def diff(self, other: "TrainConfig") -> dict[str, tuple]:
        """``{dotted key: (self value, other value)}`` where they differ, except
        :data:`RUNTIME_KEYS`."""
        a, b = _flatten(self.to_dict()), _flatten(other.to_dict())
        return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys())
                if k not in RUNTIME_KEYS and a.get(k) != b.get(k)}


def load_config(path: str | Path) -> TrainConfig:
    """Load a YAML config (following ``inherit:``) and validate it."""
    return TrainConfig.from_dict(_load_raw(Path(path), ()))


def resolve_config_path(name: str | Path) -> Path:
    """A path as given, else a preset name in ``configs/train/`` (``easy`` -> easy.yaml)."""
    p = Path(name)
    if p.is_file():
        return p
    for candidate in (PRESET_DIR / p.name, PRESET_DIR / f"{p.name}.yaml"):
        if candidate.is_file():
            return candidate
    presets = ", ".join(sorted(q.stem for q in PRESET_DIR.glob("*.yaml"))) or "none"
    raise ConfigError(f"config {str(name)!r} not found (not a file, not a preset; presets: "
                      f"{presets})")


def dump_config(config: TrainConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


# ---- internals ---------------------------------------------------------------------------

def _load_raw(path: Path, chain: tuple[Path, ...]) -> dict:
    path = path.resolve()
    if path in chain:
        raise ConfigError("inherit cycle: " + " -> ".join(p.name for p in (*chain, path)))
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    parents = [data.pop(k) for k in ("inherit", "preset") if k in data]
    if len(parents) > 1:
        raise ConfigError(f"{path}: use either 'inherit' or 'preset', not both")
    if not parents:
        return data
    parent = Path(parents[0])
    local = path.parent / parent
    candidates = [local, local.with_suffix(".yaml")] if not parent.suffix else [local]
    found = next((c for c in candidates if c.is_file()), None)
    parent_path = found or resolve_config_path(parent)
    return _merge(_load_raw(parent_path, (*chain, path)), data)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _check_keys(data: dict, valid: set, where: str) -> None:
    unknown = sorted(set(data) - valid, key=str)
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), sorted(valid), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown key {where + '.' if where else ''}{key}{hint}; valid keys "
                          f"{'in ' + where if where else 'at top level'}: "
                          f"{', '.join(sorted(valid))}")


def _build(cls: type, data: Any, where: str) -> Any:
    """Dataclass ``cls`` from a mapping, checking key names and value types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'} must be a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _check_keys(data, set(fields), where)
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        key = f"{where}.{name}" if where else name
        kwargs[name] = _coerce(hints[name], value, key)
    return cls(**kwargs)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    for t in options:
        t = typing.get_origin(t) or t
        if t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if t is int and isinstance(value, float) and value.is_integer():
            return int(value)  # YAML reads 2.5e+7 as a float
        if isinstance(value, t) and not (t is int and isinstance(value, bool)):
            return value
    names = " or ".join("null" if t is type(None) else getattr(typing.get_origin(t) or t,
                                                                "__name__", str(t))
                        for t in options)
    raise ConfigError(f"{key} must be {names}, got {value!r} ({type(value).__name__})")


def _positive(obj: Any, section: str, *names: str) -> None:
    for n in names:
        if getattr(obj, n) <= 0:
            raise ConfigError(f"{section}.{n} must be > 0, got {getattr(obj, n)}")


def _nonneg(obj: Any, section: str, *names: str) -> None:
    for n in names:
        if getattr(obj, n) < 0:
            raise ConfigError(f"{section}.{n} must be >= 0, got {getattr(obj, n)}")
