"""make_env: the one way to build a variant's envs, in this process or in a worker."""

from __future__ import annotations

from interp.envs.assets import asset_root
from interp.envs.base import check_env_count
from interp.envs.remote import RemoteVecEnv
from interp.envs.spec import EnvSpec
from interp.envs.vecenv import VecEnv, env_class


def make_env(variant: str | EnvSpec, num: int = 64, seed: int = 0, *,
             distribution_mode: str = "easy", num_levels: int = 0, start_level: int = 0,
             options: dict | None = None, num_threads: int = 2, remote: bool = False) -> VecEnv:
    """Build ``num`` envs of a variant (name or :class:`EnvSpec`). ``remote=True`` runs them in
    a worker process (:class:`~interp.envs.remote.RemoteVecEnv`; variants with their own
    sprites always do), where edits and labels run beside this process's work."""
    spec = variant if isinstance(variant, EnvSpec) else EnvSpec(
        variant, distribution_mode, num_levels, start_level, dict(options or {}))
    check_env_count(num, "lower --num-envs")
    root = resource_root(spec)
    if remote or root is not None:
        return RemoteVecEnv(spec, num=num, seed=seed, num_threads=num_threads, resource_root=root)
    return env_class(spec.get_variant())(spec, num=num, seed=seed, num_threads=num_threads)


def make_local(spec: EnvSpec, num: int, seed: int = 0, num_threads: int = 2) -> VecEnv:
    """The envs in this process even for a variant with its own sprites (no per-step IPC);
    the process is then bound to those sprites (a process that only needs one set)."""
    return env_class(spec.get_variant())(spec, num=num, seed=seed, num_threads=num_threads,
                                         resource_root=resource_root(spec))


def resource_root(spec: EnvSpec) -> str | None:
    """The procgen ``resource_root`` of the sprites ``spec``'s variant declares (None: stock)."""
    assets = spec.get_variant().assets
    return None if assets is None else asset_root(assets(spec.resolved_options()))
