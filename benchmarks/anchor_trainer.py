"""The papers' PPO trainer against interp's, same hyperparameters and machine, in one run.

The anchor is train-procgen-pytorch as the goal-misgeneralization papers used it (the jbkjr
fork). Its code is NOT part of this repository: check it out locally and point at it.

    git clone https://github.com/jbkjr/train-procgen-pytorch /tmp/anchor    # local only
    python benchmarks/anchor_trainer.py --anchor /tmp/anchor --preset easy
    python benchmarks/anchor_trainer.py --anchor /tmp/anchor --preset coinrun-cpu
    python benchmarks/anchor_trainer.py --anchor /tmp/anchor --preset easy --num-steps 32

Both trainers get the preset's PPO settings (envs, steps, epochs, minibatches; ``--num-steps``
shortens the rollout, as docs/benchmarks.md's easy-preset baseline does), CoinRun easy,
the same torch and Procgen thread counts. The anchor runs its own ``PPO.train`` loop on stock
Procgen (its fork's extra env options are left out: they default to off) without its
validation envs (which would double its env stepping) and with a no-op logger; interp runs
``Trainer.collect`` + ``Trainer.update`` in fp32 and with bf16 autocast. The three are measured
in interleaved rounds; each figure is the median over rounds of env steps/s, with the ratio
against the anchor.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from interp.train import TrainConfig, Trainer, load_config
from interp.train.config import resolve_config_path


class _NoLog:
    """Stands in for the anchor's pandas logger (its bookkeeping is not what is measured)."""

    logdir = "/nonexistent"

    def feed(self, *args) -> None:
        pass

    def dump(self) -> None:
        pass


def anchor_steps_per_s(anchor: Path, cfg: TrainConfig, rollouts: int, env_threads: int) -> float:
    """Steps/s of the anchor's ``PPO.train`` over ``rollouts`` rollouts (fresh envs)."""
    sys.path.insert(0, str(anchor))
    try:
        from agents.ppo import PPO
        from common.env.procgen_wrappers import (ScaledFloatFrame, TransposeFrame,
                                                 VecExtractDictObs, VecNormalize)
        from common.model import ImpalaModel
        from common.policy import CategoricalPolicy
        from common.storage import Storage
    finally:
        sys.path.pop(0)
    from procgen import ProcgenEnv

    ppo = cfg.ppo
    venv = ProcgenEnv(num_envs=ppo.num_envs, env_name="coinrun", num_levels=0, start_level=0,
                      distribution_mode=cfg.env.get("distribution_mode", "easy"),
                      num_threads=env_threads)
    venv = ScaledFloatFrame(TransposeFrame(VecNormalize(VecExtractDictObs(venv, "rgb"),
                                                        ob=False)))
    model = ImpalaModel(in_channels=3)
    policy = CategoricalPolicy(model, False, venv.action_space.n)
    storage = Storage(venv.observation_space.shape, model.output_dim, ppo.num_steps,
                      ppo.num_envs, torch.device("cpu"))
    agent = PPO(venv, policy, _NoLog(), storage, torch.device("cpu"), 1,
                n_steps=ppo.num_steps, n_envs=ppo.num_envs, epoch=ppo.epochs,
                mini_batch_per_epoch=ppo.num_minibatches, mini_batch_size=ppo.minibatch_size,
                gamma=ppo.gamma, lmbda=ppo.gae_lambda, learning_rate=ppo.lr,
                grad_clip_norm=ppo.max_grad_norm, eps_clip=ppo.clip, value_coef=ppo.value_coef,
                entropy_coef=ppo.entropy_coef, normalize_adv=ppo.norm_adv,
                normalize_rew=ppo.norm_reward, use_gae=True)
    t = time.perf_counter()
    agent.train(rollouts * ppo.batch_size)  # closes the env at the end
    return rollouts * ppo.batch_size / (time.perf_counter() - t)


def interp_steps_per_s(trainer: Trainer, rollouts: int) -> float:
    t = time.perf_counter()
    for _ in range(rollouts):
        trainer.collect()
        trainer.update()
    return rollouts * trainer.config.ppo.batch_size / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--anchor", type=Path, required=True,
                    help="a local checkout of jbkjr/train-procgen-pytorch")
    ap.add_argument("--preset", default="easy", help="interp config whose PPO settings both use")
    ap.add_argument("--num-steps", type=int, help="rollout length (default: the preset's)")
    ap.add_argument("--rollouts", type=int, default=2, help="timed rollouts per measurement")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    ap.add_argument("--env-threads", type=int, default=os.cpu_count(), help="Procgen threads")
    args = ap.parse_args()
    if not (args.anchor / "agents" / "ppo.py").is_file():
        raise SystemExit(f"--anchor {args.anchor}: no agents/ppo.py there; clone "
                         "https://github.com/jbkjr/train-procgen-pytorch first")

    torch.set_num_threads(args.threads)
    base = load_config(resolve_config_path(args.preset)).to_dict()
    base["env"]["variant"] = "coinrun"
    if args.num_steps:
        base["ppo"]["num_steps"] = args.num_steps
    base["run"].update(device="cpu", total_steps=10**9, eval_variants=[],
                       env_threads=args.env_threads, env_groups=1, compile=False)
    cfgs = {amp: TrainConfig.from_dict({**base, "run": {**base["run"], "amp": amp}})
            for amp in (False, True)}
    ppo = cfgs[False].ppo
    print(f"CPU, {os.cpu_count()} cores, torch {torch.__version__} ({args.threads} threads, "
          f"{args.env_threads} Procgen threads); coinrun easy; preset {args.preset}: "
          f"{ppo.num_envs} envs x {ppo.num_steps} steps, {ppo.epochs} epochs x "
          f"{ppo.num_minibatches} minibatches of {ppo.minibatch_size}; {args.rounds} rounds x "
          f"{args.rollouts} rollouts")
    trainers = {amp: Trainer(cfg, torch.device("cpu")) for amp, cfg in cfgs.items()}
    results: dict[str, list[float]] = {"anchor": [], "interp fp32": [], "interp bf16": []}
    try:
        for trainer in trainers.values():  # warm-up
            interp_steps_per_s(trainer, 1)
        for r in range(args.rounds):
            results["anchor"].append(anchor_steps_per_s(args.anchor, cfgs[False], args.rollouts,
                                                        args.env_threads))
            results["interp fp32"].append(interp_steps_per_s(trainers[False], args.rollouts))
            results["interp bf16"].append(interp_steps_per_s(trainers[True], args.rollouts))
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in results.items()),
                  flush=True)
    finally:
        for trainer in trainers.values():
            trainer.close()
    base_rate = statistics.median(results["anchor"])
    print(f"\n{'trainer':<14s} {'env steps/s':>12s} {'range':>13s} {'vs anchor':>10s}")
    for name, v in results.items():
        m = statistics.median(v)
        print(f"{name:<14s} {m:12.0f} {min(v):6.0f}-{max(v):<6.0f} {m / base_rate:9.2f}x")


if __name__ == "__main__":
    main()
