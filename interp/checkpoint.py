"""Self-describing agent checkpoints; also reads agents saved by train-procgen-pytorch and
procgen-tools (and wraps them in our format: :func:`import_agent`).

Our format is one ``torch.save``d dict of plain Python values and tensors (loadable with
``weights_only=True``): ``format="interp-agent"``, ``format_version``, ``model_config``,
``model_state_dict`` (the key train-procgen-pytorch loaders read), ``optimizer_state_dict``,
``env_spec``, ``seed``, ``steps``, ``train_config``, ``metrics``, ``code_version``, ``created``,
``extra``.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from interp.device import resolve_device
from interp.envs.base import NUM_ACTIONS
from interp.errors import InterpError, InterpWarning
from interp.models import ImpalaAgent, ModelConfig
from interp.outputs import check_output
from interp.version import code_version

FORMAT = "interp-agent"
FORMAT_VERSION = 1
_STATE_KEYS = ("model_state_dict", "optimizer_state_dict")
_MANIFEST_KEYS = ("format", "format_version", "model_config", "env_spec", "seed", "steps",
                  "train_config", "metrics", "code_version", "created", "extra")
FOREIGN = "train-procgen-pytorch"  # source_format of every checkpoint not written here
# state-dict wrappers of the train-procgen-pytorch lineage: top-level key -> layout name
_WRAPPERS = {"model_state_dict": "{'model_state_dict', 'optimizer_state_dict'} (jbkjr fork, "
                                 "procgen-tools)",
             "state_dict": "{'state_dict'} (train-procgen-pytorch agents/ppo.py)"}
SUPPORTED = ("this tool runs IMPALA-CNN actor-critics as train-procgen-pytorch and procgen-tools "
             "save them: embedder.block1-3 (conv, res1, res2), embedder.fc, fc_policy, fc_value "
             "and optionally a GRU (gru.gru), in an interp-agent file, a {'state_dict'} or "
             "{'model_state_dict'} dict or a bare state dict")
START_NEEDS_LEVELS = ("--start-level needs --num-levels N (with 0 levels every level seed is "
                      "drawn at random)")
_STEPS_IN_NAME = re.compile(r"^model_(\d+)\.pth?$")  # train-procgen-pytorch's file names


class CheckpointError(InterpError, ValueError):
    """A checkpoint that cannot be written or read as an agent."""


@dataclass
class LoadedAgent:
    """An agent in eval mode plus everything its checkpoint says about it."""

    model: ImpalaAgent
    manifest: dict[str, Any]
    optimizer_state: dict[str, Any] | None
    source_format: str  # "interp" | "train-procgen-pytorch"
    layout: str = FORMAT  # how the file holds the weights (see _WRAPPERS)
    path: Path | None = None

    def env_spec(self, variant: str | None = None, distribution_mode: str | None = None,
                 options: dict | None = None, *, num_levels: int | None = None,
                 start_level: int | None = None, training_levels: bool = False):
        """The env to run this agent on: ``variant`` (default: the one it was trained on) in
        ``distribution_mode`` (default: its training mode; never assumed for a file that does
        not say it). On its training variant the training options hold unless ``options``
        override them; another variant starts from its own defaults. Levels: ``num_levels`` /
        ``start_level`` when given, else its own training levels with ``training_levels``,
        else unrestricted (any level seed)."""
        from interp.envs import EnvSpec, get_variant

        trained = self.manifest.get("env_spec") or {}
        variant = variant or trained.get("variant")
        if variant is None:
            raise self.missing("which env it was trained on", "--env VARIANT")
        mode = distribution_mode or trained.get("distribution_mode")
        if mode is None:
            raise self.missing("which distribution mode it was trained in",
                               "--distribution-mode easy|hard")
        num_levels, start_level = self.levels(num_levels, start_level, training_levels)
        base = (trained.get("options") or {}) if variant == trained.get("variant") else {}
        spec = EnvSpec(variant, mode, num_levels or 0, start_level or 0,
                       options={**base, **(options or {})})
        self.warn_other_game(get_variant(variant).game)
        return spec

    def levels(self, num_levels: int | None = None, start_level: int | None = None,
               training_levels: bool = False) -> tuple[int | None, int | None]:
        """``(num_levels, start_level)`` as given, or the agent's training levels with
        ``training_levels``; None where neither says (unrestricted)."""
        if start_level and not num_levels:
            raise CheckpointError(START_NEEDS_LEVELS)
        if not training_levels:
            return num_levels, start_level
        if num_levels is not None or start_level is not None:
            raise CheckpointError("give --training-levels or --num-levels/--start-level, "
                                  "not both")
        trained = self.manifest.get("env_spec")
        if not trained:
            raise self.missing("which levels it was trained on", "--num-levels N --start-level S")
        return trained.get("num_levels", 0), trained.get("start_level", 0)

    def missing(self, what: str, option: str) -> CheckpointError:
        """The error for a fact about the training env that the checkpoint lacks: pass
        ``option``, or import the file once with its env spec."""
        name = self.path or "CKPT"
        return CheckpointError(
            f"{name} does not say {what} (a file trained elsewhere); pass {option}, or import it "
            f"once: interp agents import {name} --env VARIANT --distribution-mode easy|hard "
            "[--num-levels N --start-level S] --out agent.pt")

    def warn_other_game(self, game: str) -> None:
        """Warn (:class:`~interp.errors.InterpWarning`) when ``game`` is not the game of the
        agent's training env (nothing to compare for a checkpoint without an env spec)."""
        from interp.envs import EnvConfigError, get_variant

        trained = (self.manifest.get("env_spec") or {}).get("variant")
        try:
            trained_game = get_variant(trained).game if trained else None
        except EnvConfigError:  # a variant this code does not know: nothing to compare
            trained_game = None
        if trained_game is not None and trained_game != game:
            warnings.warn(InterpWarning(
                f"the agent was trained on {trained} ({trained_game}), this runs it on "
                f"{game}: its behaviour there says little about the goal it learned; pass an "
                "env of its own game unless that is the point"), stacklevel=2)


def _plain(obj: Any, where: str) -> Any:
    """Check ``obj`` is weights_only-loadable; numpy scalars become Python scalars."""
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str, torch.Tensor)):
        return obj
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v, f"{where}[{i}]") for i, v in enumerate(obj))
    if isinstance(obj, dict):
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    raise CheckpointError(f"{where} is a {type(obj).__name__}; checkpoints hold only plain "
                          "Python values (None/bool/int/float/str/list/tuple/dict) and tensors")


def save_agent(path: str | os.PathLike, model: nn.Module, *, env_spec: dict | None,
               seed: int | None, steps: int | None,
               optimizer: torch.optim.Optimizer | dict | None = None,
               train_config: dict | None = None, metrics: dict | None = None,
               extra: dict | None = None) -> Path:
    """Write ``model`` and its provenance to ``path`` atomically (tmp file + ``os.replace``)."""
    model = getattr(model, "_orig_mod", model)  # unwrap torch.compile
    if not isinstance(model, ImpalaAgent):
        raise CheckpointError(f"save_agent needs an ImpalaAgent, got {type(model).__name__}")
    if optimizer is not None and not isinstance(optimizer, dict):
        optimizer = optimizer.state_dict()
    payload = _plain({
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "model_config": model.config.to_dict(),
        "model_state_dict": {k: v.detach().cpu().contiguous()
                             for k, v in model.state_dict().items()},
        **({"optimizer_state_dict": optimizer} if optimizer is not None else {}),
        "env_spec": env_spec, "seed": seed, "steps": None if steps is None else int(steps),
        "train_config": train_config,
        "metrics": metrics, "code_version": code_version(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "extra": extra,
    }, "checkpoint")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _read(path: Path) -> Any:
    if path.is_dir():
        found = sorted(p.name for p in path.iterdir() if p.suffix in (".pt", ".pth"))
        hint = f"; it holds {', '.join(found[:3])}" if found else ""
        raise CheckpointError(f"{path} is a folder, not a checkpoint file{hint}"
                              + (f": pass {path / 'agent.pt'}" if "agent.pt" in found else ""))
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # zip/pickle/EOF errors for files that are not torch checkpoints
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(e))
        if found:
            raise CheckpointError(f"{path}: holds a Python object ({found[1]}), not only tensors "
                                  "and plain values; refusing to unpickle it") from e
        raise CheckpointError(f"{path}: not a readable torch checkpoint "
                              f"({type(e).__name__})") from e


def _family(key: str) -> str:
    """The module a parameter belongs to, numbered siblings merged: 'embedder.target_block2.conv
    .weight' -> 'embedder.target_block*', 'fc_policy.weight' -> 'fc_policy'."""
    parts = key.split(".")[:-1][:2] or [key]
    return ".".join(re.sub(r"\d+$", "*", p) for p in parts)


def _families(keys: list[str]) -> str:
    """'embedder.target_block* (30 tensors, e.g. embedder.target_block1.conv.weight), ...'."""
    groups: dict[str, list[str]] = {}
    for k in keys:
        groups.setdefault(_family(k), []).append(k)
    return ", ".join(f"{fam} ({len(ks)} tensor{'s' * (len(ks) > 1)}, e.g. {ks[0]})"
                     for fam, ks in groups.items())


def _infer_config(sd: dict[str, torch.Tensor], path: Path) -> ModelConfig:
    """Width, actions, input channels, hidden and GRU sizes from an IMPALA state dict."""
    needed = ("embedder.block1.conv.weight", "embedder.fc.weight", "fc_policy.weight")
    absent = [k for k in needed if not isinstance(sd.get(k), torch.Tensor)]
    if absent:
        hint = (" (keys without 'embedder.': an embedder's own state dict, no policy; save the "
                "whole policy's)" if "block1.conv.weight" in sd else "")
        raise CheckpointError(f"{path}: not an IMPALA agent: no {', '.join(absent)}; it holds "
                              f"{_families(sorted(sd)) or 'no tensors'}{hint}; {SUPPORTED}")
    conv, fc, policy = (sd[k] for k in needed)
    if conv.ndim != 4 or conv.shape[0] % 16:
        raise CheckpointError(f"{path}: cannot infer width from embedder.block1.conv.weight of "
                              f"shape {tuple(conv.shape)} (out channels must be 16 x width)")
    gru = sd.get("gru.gru.weight_hh_l0")
    return ModelConfig(width=conv.shape[0] // 16, num_actions=policy.shape[0],
                       in_channels=conv.shape[1], hidden=fc.shape[0],
                       gru_hidden=0 if gru is None else gru.shape[1])


def _recognised(cfg: ModelConfig) -> str:
    """What the weights were read as, for error messages and ``agents info``."""
    return (f"IMPALA embedder of width {cfg.width} (channels {'/'.join(map(str, cfg.channels))}, "
            f"fc {cfg.hidden}), " + (f"GRU of hidden size {cfg.gru_hidden}, " if cfg.recurrent
                                     else "") + f"{cfg.num_actions}-action policy head, value head")


def _split(obj: Any, path: Path) -> tuple[str, str, dict, dict[str, Any], dict | None]:
    """-> (source_format, layout, model_state_dict, manifest, optimizer_state)."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}; {SUPPORTED}")
    if obj.get("format") == FORMAT:
        if obj.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(f"{path}: interp-agent format_version "
                                  f"{obj.get('format_version')!r}; this code reads "
                                  f"{FORMAT_VERSION}")
        missing = [k for k in ("model_config", "model_state_dict") if k not in obj]
        unexpected = sorted(set(obj) - set(_MANIFEST_KEYS) - set(_STATE_KEYS))
        if missing or unexpected:
            raise CheckpointError(f"{path}: malformed interp-agent checkpoint (missing "
                                  f"{missing}, unexpected {unexpected[:5]})")
        manifest = {k: obj.get(k) for k in _MANIFEST_KEYS}
        return "interp", FORMAT, obj["model_state_dict"], manifest, obj.get("optimizer_state_dict")
    key = next((k for k in _WRAPPERS if k in obj), None)
    if key is not None:
        sd, opt, layout = obj[key], obj.get("optimizer_state_dict"), _WRAPPERS[key]
        rest = {k: v for k, v in obj.items() if k not in (key, "optimizer_state_dict")}
    elif obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        sd, opt, rest, layout = obj, None, {}, "bare state dict"
    else:
        raise CheckpointError(f"{path}: unrecognised checkpoint with top-level keys "
                              f"{sorted(map(str, obj))[:5]}; {SUPPORTED}")
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: {key} is a {type(sd).__name__}, not a state dict")
    if sd and all(isinstance(k, str) and k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}  # saved from nn.DataParallel
        layout += ", keys with the 'module.' prefix of DataParallel"
    manifest = dict.fromkeys(_MANIFEST_KEYS)
    manifest.update(format=FOREIGN, model_config=_infer_config(sd, path).to_dict(),
                    extra=rest or None)
    return FOREIGN, layout, sd, manifest, opt


def load_agent(path: str | os.PathLike, device: torch.device | str = "cpu") -> LoadedAgent:
    """Load an interp-agent checkpoint or an IMPALA agent saved by train-procgen-pytorch or
    procgen-tools (any layout of :data:`_WRAPPERS`, a bare state dict, DataParallel's
    ``module.`` keys; widths and action counts inferred; recurrent ones with their GRU).
    The model is in eval mode. For a file from elsewhere the env spec, seed, steps etc. are
    unknown (None): ``interp agents import`` adds them.

    ``device``: cpu, cuda[:N] or auto.
    """
    device = resolve_device(device)
    path = Path(path)
    source, layout, sd, manifest, opt = _split(_read(path), path)
    try:
        config = ModelConfig.from_dict(manifest["model_config"])
        model = ImpalaAgent(config)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: bad model_config: {e}") from e
    missing, unexpected = (sorted(set(model.state_dict()) - set(sd)),
                           sorted(set(sd) - set(model.state_dict())))
    if missing or unexpected:
        found = "; ".join(f"{what} {_families(keys)}" for what, keys in
                          (("unexpected", unexpected), ("missing", missing)) if keys)
        raise CheckpointError(f"{path}: not an IMPALA agent this tool can run: {found}. It "
                              f"reads as: {_recognised(config)}; {SUPPORTED}")
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:  # shape mismatches
        detail = " ".join(str(e).split())
        raise CheckpointError(f"{path}: weights do not fit an {_recognised(config)}: "
                              f"{detail}") from e
    return LoadedAgent(model.to(device).eval(), manifest, opt, source, layout, path)


def steps_from_name(path: str | os.PathLike) -> int | None:
    """Training steps in a train-procgen-pytorch file name (``model_<steps>.pth``), or None."""
    found = _STEPS_IN_NAME.match(Path(path).name)
    return int(found[1]) if found else None


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def import_agent(checkpoint: str | os.PathLike, out: str | os.PathLike, *, env: str,
                 distribution_mode: str | None, options: dict | None = None,
                 num_levels: int = 0, start_level: int = 0, steps: int | None = None,
                 source: str | None = None, overwrite: bool = False) -> Path:
    """Wrap an agent trained elsewhere in an interp-agent file that says what it was trained
    on: the env spec (``env`` with ``options``, ``distribution_mode``, the level range),
    ``steps`` (default: from a ``model_<steps>.pth`` name), and where the weights came from
    (``extra["imported_from"]``: file name, sha256, layout, ``source``). The optimizer state
    is not copied. Everything is checked before ``out`` is written."""
    from interp.envs import EnvSpec
    from interp.rollout import check_agent_env

    checkpoint, out = Path(checkpoint), Path(out)
    if out.resolve() == checkpoint.resolve():
        raise CheckpointError(f"--out {out} is the file being imported; write a new file")
    check_output(out, "file", overwrite=overwrite)
    if not distribution_mode:
        raise CheckpointError("--distribution-mode is required: the mode the agent was trained "
                              "in (easy or hard; train-procgen-pytorch's config names say it, "
                              "e.g. easy-200); it is never assumed")
    agent = load_agent(checkpoint)
    if agent.source_format != FOREIGN:
        raise CheckpointError(f"{checkpoint} is already an interp-agent checkpoint (env spec "
                              f"{_fmt(agent.manifest['env_spec'])}); nothing to import")
    if steps is not None and steps < 0:
        raise CheckpointError(f"--steps must be >= 0, got {steps}")
    if start_level and not num_levels:
        raise CheckpointError(START_NEEDS_LEVELS)
    spec = EnvSpec(env, distribution_mode, num_levels, start_level, dict(options or {}))
    check_agent_env(agent.model, spec)
    origin = {"file": checkpoint.name, "sha256": file_sha256(checkpoint), "layout": agent.layout,
              "source": source}
    if agent.manifest["extra"]:
        origin["other_entries"] = sorted(agent.manifest["extra"])
    return save_agent(out, agent.model, env_spec=spec.to_dict(), seed=None,
                      steps=steps_from_name(checkpoint) if steps is None else steps,
                      extra={"imported_from": origin})


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return f"[{len(value)} values]" + (f", last {_fmt(value[-1])}" if value else "")
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    if isinstance(value, torch.Tensor):
        return f"tensor{tuple(value.shape)}" if value.numel() != 1 else _fmt(value.item())
    return str(value)


def describe_agent(path: str | os.PathLike) -> str:
    """Human-readable summary of a checkpoint (what ``interp agents info CKPT`` prints). For a
    file from elsewhere: what it holds, what was inferred from the weights, what is missing and
    how to supply it."""
    agent = load_agent(path)
    m, cfg = agent.manifest, agent.model.config
    foreign = agent.source_format == FOREIGN
    inferred = " (inferred from the weights)" if foreign else ""
    unknown = lambda v: "unknown" if v is None else _fmt(v)  # noqa: E731
    steps = m["steps"] if m["steps"] is not None else steps_from_name(path) if foreign else None
    lines = [
        ("file", str(path)),
        ("format", f"{FOREIGN}, layout {agent.layout}" if foreign else
         f"{m['format']} v{m['format_version']}"),
        ("architecture", f"{cfg.arch} (channels {'/'.join(map(str, cfg.channels))}, "
                         f"hidden {cfg.hidden}){inferred}"),
        ("width", f"{cfg.width}{inferred}"),
        ("recurrent", (f"yes, GRU with hidden size {cfg.gru_hidden}" if cfg.recurrent else "no")
         + inferred),
        ("params", f"{agent.model.num_params():,}"),
        ("actions", f"{cfg.num_actions}" + ("" if cfg.num_actions == NUM_ACTIONS else
                                            f" (plays Procgen actions 0-{cfg.num_actions - 1})")
         + inferred),
        ("env spec", ("missing: the variant, distribution mode and levels it was trained on"
                      if foreign else unknown(m["env_spec"]))),
        ("seed", unknown(m["seed"])),
        ("steps", "unknown" if steps is None else f"{steps:,}" + (
            " (inferred from the file name)" if m["steps"] is None else "")),
        ("code version", unknown(m["code_version"])),
        ("created", unknown(m["created"])),
        ("optimizer state", "yes" if agent.optimizer_state is not None else "no"),
    ]
    if m["metrics"]:
        lines += [(f"metric {k}", _fmt(v)) for k, v in m["metrics"].items()]
    extra = dict(m["extra"] or {})
    origin = extra.pop("imported_from", None) if not foreign else None
    if origin:
        lines.append(("imported from", f"{origin['file']} (sha256 {origin['sha256']}, layout "
                                       f"{origin['layout']})"))
        lines.append(("source", unknown(origin.get("source"))))
    init = extra.pop("init_from", None) if not foreign else None
    if init:
        steps_then = "steps unknown" if init["steps"] is None else f"{init['steps']:,} steps"
        lines.append(("initialised from", f"{init['file']} (sha256 {init['sha256'][:12]}..., "
                                          f"{steps_then}; steps above count from there)"))
    if extra:
        lines.append(("other entries" if foreign else "extra", ", ".join(map(str, extra))))
    width = max(len(k) for k, _ in lines)
    text = "\n".join(f"{k:<{width}}  {v}" for k, v in lines)
    if foreign:
        text += (f"\n\nsha256 {file_sha256(path)}. Commands that need the training env "
                 "(maze-corner, misgen-rates, colour-shape, keys-chests, --training-levels) "
                 "refuse this file; "
                 "others need --env and --distribution-mode. Make it self-describing once:\n"
                 f"  interp agents import {path} --env VARIANT --distribution-mode easy|hard "
                 "[-o KEY=VALUE] [--num-levels N --start-level S] [--steps N] [--source TEXT] "
                 "--out agent.pt")
    return text
