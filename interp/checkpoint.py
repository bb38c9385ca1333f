"""Self-describing agent checkpoints; also reads train-procgen-pytorch checkpoints.

Our format is one ``torch.save``d dict of plain Python values and tensors (loadable with
``weights_only=True``): ``format="interp-agent"``, ``format_version``, ``model_config``,
``model_state_dict`` (the key train-procgen-pytorch loaders read), ``optimizer_state_dict``,
``env_spec``, ``seed``, ``steps``, ``train_config``, ``metrics``, ``code_version``, ``created``,
``extra``.
"""

from __future__ import annotations

import datetime
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from interp.device import resolve_device
from interp.errors import InterpError
from interp.models import ImpalaAgent, ModelConfig
from interp.version import code_version

FORMAT = "interp-agent"
FORMAT_VERSION = 1
_STATE_KEYS = ("model_state_dict", "optimizer_state_dict")
_MANIFEST_KEYS = ("format", "format_version", "model_config", "env_spec", "seed", "steps",
                  "train_config", "metrics", "code_version", "created", "extra")
_LEGACY_HINT = ("expected an interp-agent checkpoint, a train-procgen-pytorch dict "
                "{'model_state_dict', 'optimizer_state_dict'}, or a bare IMPALA state_dict "
                "with keys like 'embedder.block1.conv.weight'")


class CheckpointError(InterpError, ValueError):
    """A checkpoint that cannot be written or read as an agent."""


@dataclass
class LoadedAgent:
    """An agent in eval mode plus everything its checkpoint says about it."""

    model: ImpalaAgent
    manifest: dict[str, Any]
    optimizer_state: dict[str, Any] | None
    source_format: str  # "interp" | "train-procgen-pytorch"

    def env_spec(self, variant: str | None = None, distribution_mode: str | None = None,
                 options: dict | None = None):
        """The env to run this agent on: ``variant`` (default: the one it was trained on) in
        ``distribution_mode`` (default: its training mode, else easy). On its training variant
        the training options hold unless ``options`` override them; another variant starts
        from its own defaults."""
        from interp.envs import EnvSpec

        trained = self.manifest.get("env_spec") or {}
        variant = variant or trained.get("variant")
        if variant is None:
            raise CheckpointError("the checkpoint does not say which env it was trained on "
                                  "(a train-procgen-pytorch file?); pass --env")
        mode = distribution_mode or trained.get("distribution_mode") or "easy"
        base = (trained.get("options") or {}) if variant == trained.get("variant") else {}
        return EnvSpec(variant, mode, options={**base, **(options or {})})


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
               seed: int | None, steps: int, optimizer: torch.optim.Optimizer | dict | None = None,
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
        "env_spec": env_spec, "seed": seed, "steps": int(steps), "train_config": train_config,
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


def _infer_config(sd: dict[str, torch.Tensor], path: Path) -> ModelConfig:
    """Width, actions, input channels and hidden size from a train-procgen-pytorch state dict."""
    try:
        conv, fc, policy = (sd[k] for k in ("embedder.block1.conv.weight", "embedder.fc.weight",
                                             "fc_policy.weight"))
    except KeyError as e:
        raise CheckpointError(f"{path}: cannot infer the architecture, missing {e}; "
                              f"{_LEGACY_HINT}") from e
    if conv.ndim != 4 or conv.shape[0] % 16:
        raise CheckpointError(f"{path}: cannot infer width from embedder.block1.conv.weight of "
                              f"shape {tuple(conv.shape)} (out channels must be 16 x width)")
    return ModelConfig(width=conv.shape[0] // 16, num_actions=policy.shape[0],
                       in_channels=conv.shape[1], hidden=fc.shape[0])


def _split(obj: Any, path: Path) -> tuple[str, dict, dict[str, Any], dict | None]:
    """-> (source_format, model_state_dict, manifest, optimizer_state)."""
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: holds a {type(obj).__name__}; {_LEGACY_HINT}")
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
        return "interp", obj["model_state_dict"], manifest, obj.get("optimizer_state_dict")
    if "model_state_dict" in obj:
        sd, opt = obj["model_state_dict"], obj.get("optimizer_state_dict")
        rest = {k: v for k, v in obj.items() if k not in _STATE_KEYS}
    elif obj and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        sd, opt, rest = obj, None, {}
    else:
        raise CheckpointError(f"{path}: unrecognised checkpoint with top-level keys "
                              f"{sorted(map(str, obj))[:5]}; {_LEGACY_HINT}")
    if not isinstance(sd, dict):
        raise CheckpointError(f"{path}: model_state_dict is a {type(sd).__name__}, not a dict")
    manifest = dict.fromkeys(_MANIFEST_KEYS)
    manifest.update(format="train-procgen-pytorch", model_config=_infer_config(sd, path).to_dict(),
                    extra=rest or None)
    return "train-procgen-pytorch", sd, manifest, opt


def load_agent(path: str | os.PathLike, device: torch.device | str = "cpu") -> LoadedAgent:
    """Load an interp-agent or train-procgen-pytorch checkpoint; the model is in eval mode.

    ``device``: cpu, cuda[:N] or auto. For train-procgen-pytorch files the env spec, seed,
    steps etc. are unknown (None).
    """
    device = resolve_device(device)
    path = Path(path)
    source, sd, manifest, opt = _split(_read(path), path)
    try:
        model = ImpalaAgent(ModelConfig.from_dict(manifest["model_config"]))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: bad model_config: {e}") from e
    missing, unexpected = (sorted(set(model.state_dict()) - set(sd)),
                           sorted(set(sd) - set(model.state_dict())))
    if missing or unexpected:
        raise CheckpointError(f"{path}: state dict does not match the IMPALA agent: missing "
                              f"{missing[:5]}{'...' if len(missing) > 5 else ''}, unexpected "
                              f"{unexpected[:5]}{'...' if len(unexpected) > 5 else ''}; "
                              f"{_LEGACY_HINT}")
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:  # shape mismatches
        raise CheckpointError(f"{path}: {e}") from e
    return LoadedAgent(model.to(device).eval(), manifest, opt, source)


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
    """Human-readable summary of a checkpoint (what ``interp agents info CKPT`` prints)."""
    agent = load_agent(path)
    m, cfg = agent.manifest, agent.model.config
    unknown = lambda v: "unknown" if v is None else _fmt(v)  # noqa: E731
    lines = [
        ("file", str(path)),
        ("format", f"{m['format']}" + (f" v{m['format_version']}" if m["format_version"] else "")),
        ("architecture", f"{cfg.arch} (channels {'/'.join(map(str, cfg.channels))}, "
                         f"hidden {cfg.hidden})"),
        ("width", str(cfg.width)),
        ("params", f"{agent.model.num_params():,}"),
        ("actions", str(cfg.num_actions)),
        ("env spec", unknown(m["env_spec"])),
        ("seed", unknown(m["seed"])),
        ("steps", "unknown" if m["steps"] is None else f"{m['steps']:,}"),
        ("code version", unknown(m["code_version"])),
        ("created", unknown(m["created"])),
        ("optimizer state", "yes" if agent.optimizer_state is not None else "no"),
    ]
    if m["metrics"]:
        lines += [(f"metric {k}", _fmt(v)) for k, v in m["metrics"].items()]
    if m["extra"]:
        lines.append(("extra", ", ".join(map(str, m["extra"]))))
    width = max(len(k) for k, _ in lines)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in lines)
