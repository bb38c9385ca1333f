"""How close are bf16-autocast PPO gradients to fp32 ones? Beside the noise PPO lives with.

    python benchmarks/bf16_fidelity.py --agent agents/coinrun-cpu/agent.pt --preset coinrun-cpu
    python benchmarks/bf16_fidelity.py --preset coinrun-cpu          # the random initialisation

Collects one rollout with the agent (the trainer's own collect, fp32), computes GAE
advantages as the trainer does, then for several minibatches of the preset's size compares
the full PPO-loss gradient (all parameters) computed with the conv trunk in bf16 autocast
against the same gradient in fp32: cosine similarity and norm ratio. The reference is the
cosine between the fp32 gradients of two disjoint minibatches of the same rollout: the
sampling noise every PPO step has anyway. If bf16's deviation is far smaller than that noise,
it cannot change what the optimizer does in a way the minibatch draw does not already.
No timings: the result does not depend on the machine's load.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch

from interp.checkpoint import load_agent
from interp.train import TrainConfig, Trainer, load_config
from interp.train.config import resolve_config_path
from interp.train.ppo import gae, ppo_loss


def rollout(trainer: Trainer) -> tuple[torch.Tensor, ...]:
    """One fp32 rollout with GAE advantages (normalised) and returns, as the trainer's update."""
    ppo = trainer.config.ppo
    trainer.amp = False
    trainer.collect()
    with torch.no_grad():
        _, last = trainer._forward(torch.from_numpy(np.concatenate(trainer.obs)))
    rewards = trainer.reward_norm(trainer.rewards, trainer.dones)
    adv = gae(torch.from_numpy(rewards), trainer.values, torch.from_numpy(trainer.dones), last,
              ppo.gamma, ppo.gae_lambda)
    returns, adv = (adv + trainer.values).flatten(), adv.flatten()
    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    return (trainer.buf_obs.flatten(0, 1), trainer.actions.flatten(), trainer.logp.flatten(),
            trainer.values.flatten(), adv, returns)


def ppo_grad(trainer: Trainer, batch: tuple[torch.Tensor, ...], idx: torch.Tensor,
             amp: bool) -> torch.Tensor:
    """The PPO loss gradient of all parameters on rows ``idx`` of ``batch``, flattened."""
    obs, acts, logp, values, adv, returns = batch
    ppo = trainer.config.ppo
    trainer.amp = amp
    trainer.model.zero_grad()
    logits, v = trainer._forward(obs[idx])
    loss, _ = ppo_loss(logits, v, acts[idx], logp[idx], values[idx], adv[idx], returns[idx],
                       clip=ppo.clip, clip_value_loss=ppo.clip_value_loss,
                       value_coef=ppo.value_coef, entropy_coef=ppo.entropy_coef)
    loss.backward()
    return torch.cat([p.grad.flatten() for p in trainer.model.parameters()])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", help="checkpoint whose policy collects the rollout (default: the "
                                    "trainer's random initialisation, on the preset's env)")
    ap.add_argument("--preset", default="coinrun-cpu")
    ap.add_argument("--minibatches", type=int, default=8, help="minibatches compared")
    args = ap.parse_args()

    d = load_config(resolve_config_path(args.preset)).to_dict()
    d["run"].update(device="cpu", amp=False, eval_variants=[])
    agent = load_agent(args.agent) if args.agent else None
    if agent is not None:
        d["env"] = {**d["env"], **(agent.manifest.get("env_spec") or {})}
    cfg = TrainConfig.from_dict(d)
    trainer = Trainer(cfg, torch.device("cpu"))
    if agent is not None:
        trainer.model.load_state_dict(agent.model.state_dict())
    mb = cfg.ppo.minibatch_size
    cos = torch.nn.functional.cosine_similarity
    same, ratio, noise = [], [], []
    try:
        while len(same) < args.minibatches:  # as many rollouts as it takes
            batch = rollout(trainer)
            perm = torch.randperm(len(batch[0]),
                                  generator=torch.Generator().manual_seed(len(same)))
            for i in range(min(len(perm) // (2 * mb), args.minibatches - len(same))):
                a, b = perm[2 * i * mb:(2 * i + 1) * mb], perm[(2 * i + 1) * mb:(2 * i + 2) * mb]
                g32, g16 = ppo_grad(trainer, batch, a, False), ppo_grad(trainer, batch, a, True)
                other = ppo_grad(trainer, batch, b, False)
                same.append(cos(g32, g16, dim=0).item())
                ratio.append((g16.norm() / g32.norm()).item())
                noise.append(cos(g32, other, dim=0).item())
    finally:
        trainer.close()
    print(f"{args.agent or 'random-init agent'} on {cfg.env['variant']}, preset {args.preset}: "
          f"{args.minibatches} minibatches of {mb} from rollouts of {cfg.ppo.batch_size}")
    for name, v in (("cos(fp32, bf16), same minibatch", same),
                    ("|bf16| / |fp32|, same minibatch", ratio),
                    ("cos(fp32, fp32), two minibatches", noise)):
        print(f"{name:<36s} median {statistics.median(v):.4f}  range {min(v):.4f}-{max(v):.4f}")


if __name__ == "__main__":
    main()
