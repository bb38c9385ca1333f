"""Cost of `interp record` over a bare rollout of the same agent, envs and steps.

    .venv/bin/python benchmarks/record_overhead.py [--envs 16] [--episodes 64] [--threads 1]

The bare rollout runs the recorder's own loop (same quota accounting, same action sampler, so
the very same trajectories) without hooks, labels or writing. Then one recording per storage
setting (compression x dtype) with the default layer set, the cost of ``env.labels()`` alone,
and (with ``none`` among the settings) the float32 recording once more with the envs in this
process instead of the recorder's worker process, to measure what the worker buys. Everything
runs in one process, in ``--repeats`` interleaved rounds, so the ratios share one machine state;
each recording is divided by the bare rollouts just before and after its round.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from unittest import mock

import h5py
import numpy as np
import torch

import interp.envs
from interp.checkpoint import load_agent, save_agent
from interp.envs import make_env
from interp.models import ImpalaAgent, preprocess
from interp.record import NOOP, RecordConfig, record
from interp.rollout import sample_actions


def biased_agent(path: Path, width: int) -> Path:
    """Random-init agent biased to run right: CoinRun episodes of ~50 steps."""
    torch.manual_seed(0)
    model = ImpalaAgent(width=width)
    with torch.no_grad():
        model.fc_policy.bias[8], model.fc_policy.bias[7] = 3.0, 2.0
    return save_agent(path, model, env_spec={"variant": "coinrun"}, seed=0, steps=0)


def bare_rollout(agent: Path, cfg: RecordConfig) -> tuple[float, int]:
    """The recorder's loop without hooks, labels or writing: (seconds, rows)."""
    model = load_agent(agent).model
    env = make_env("coinrun", num=cfg.num_envs, seed=cfg.seed)
    quota, done = cfg.quotas(), np.zeros(cfg.num_envs, np.int64)
    step = np.zeros(cfg.num_envs, np.int64)
    rows, t0 = 0, time.perf_counter()
    _, obs, _ = env.observe()
    with torch.inference_mode():
        while (active := np.flatnonzero(done < quota)).size:
            logits, _ = model(preprocess(obs[active], memory_format=torch.channels_last))
            probs = torch.softmax(logits.float(), -1).numpy()
            actions = np.full(cfg.num_envs, NOOP, dtype=np.int32)
            actions[active] = sample_actions(probs, cfg.seed, active, done[active], step[active])
            env.act(actions)
            _, obs, first = env.observe()
            step[active] += 1
            rows += len(active)
            ends = active[first[active]]
            done[ends] += 1
            step[ends] = 0
    seconds = time.perf_counter() - t0
    env.close()
    return seconds, rows


def labels_cost(num_envs: int, calls: int = 50) -> float:
    """Seconds per ``env.labels()`` call (all envs) on CoinRun mid-episode states."""
    env = make_env("coinrun", num=num_envs, seed=0)
    for _ in range(20):
        env.act(np.random.randint(0, 15, num_envs))
    t0 = time.perf_counter()
    for _ in range(calls):
        env.labels()
        env.act(np.random.randint(0, 15, num_envs))
    seconds = (time.perf_counter() - t0) / calls
    env.close()
    return seconds


def stored_bytes(path: Path) -> int:
    """Uncompressed bytes of a recording's per-step datasets."""
    with h5py.File(path) as f:
        return sum(ds.size * ds.dtype.itemsize for g in ("steps", "labels", "activations")
                   for ds in f[g].values())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--envs", type=int, default=16)
    p.add_argument("--episodes", type=int, default=64)
    p.add_argument("--width", type=int, default=1)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (2 are ~3x slower than 1 on the 2-vCPU dev VM)")
    p.add_argument("--compression", nargs="+", default=["none", "lzf", "gzip"],
                   choices=["none", "lzf", "gzip"], help="storage settings to time")
    p.add_argument("--repeats", type=int, default=3,
                   help="rounds of (bare rollout, every setting); a bare rollout closes them")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="record-bench-"))
    agent = biased_agent(tmp / "agent.pt", args.width)
    cfg = RecordConfig(episodes=args.episodes, num_envs=args.envs, seed=0, layers=(),
                       float16=False, greedy=False, compression="gzip")
    settings = [(c, f16, True) for c in args.compression for f16 in (False, True)]
    if "none" in args.compression:
        settings.append(("none", False, False))  # envs in this process: what the worker buys

    def in_process(*a, remote: bool = False, **k):
        return make_env(*a, **k)

    bare, times, sizes = [], {s: [] for s in settings}, {}
    for _ in range(args.repeats):
        seconds, rows = bare_rollout(agent, cfg)
        bare.append(seconds)
        for setting in settings:
            compression, float16, remote = setting
            out = tmp / "bench.h5"
            with mock.patch.object(interp.envs, "make_env", make_env if remote else in_process):
                s = record(agent, out, env="coinrun", episodes=args.episodes,
                           num_envs=args.envs, device="cpu", float16=float16,
                           compression=compression)
            assert s.rows == rows, (s.rows, rows)
            times[setting].append(s.seconds)
            sizes[setting] = (stored_bytes(out), os.path.getsize(out))
            out.unlink()
    bare.append(bare_rollout(agent, cfg)[0])
    lab = labels_cost(args.envs)
    print(f"device cpu, torch threads {args.threads}, width {args.width}, {args.envs} envs, "
          f"{args.episodes} episodes, {rows} steps, {args.repeats} rounds")
    print(f"bare rollout: {np.median(bare):.2f} s median ({rows / np.median(bare):.0f} steps/s), "
          f"range {min(bare):.2f}-{max(bare):.2f} s")
    print(f"env.labels(): {lab * 1e3:.1f} ms per call of {args.envs} envs = "
          f"{lab / args.envs * 1e3:.2f} ms per step = {lab / args.envs * rows / np.median(bare):.0%}"
          " of the bare rollout (included in every recording below)")
    print("ratio = recording time / mean of the bare rollouts just before and after it, per round")
    print(f"{'storage':16s} {'median s':>8s} {'ratio':>6s} {'range':>11s} {'MB/s':>6s} "
          f"{'GB/10k steps':>13s}")
    for setting, ts in times.items():
        compression, float16, remote = setting
        ratios = [t / ((bare[r] + bare[r + 1]) / 2) for r, t in enumerate(ts)]
        raw, size = sizes[setting]
        name = f"{compression}/{'f16' if float16 else 'f32'}{'' if remote else ' local'}"
        print(f"{name:16s} {np.median(ts):8.2f} {np.median(ratios):5.2f}x "
              f"{min(ratios):5.2f}-{max(ratios):4.2f} {raw / 1e6 / np.median(ts):6.0f} "
              f"{size / rows * 1e4 / 1e9:13.2f}")
    print("(times exclude loading the agent and making the envs; MB/s = uncompressed bytes "
          "stored / recording time; 'local': envs in this process, no worker)")


if __name__ == "__main__":
    main()
