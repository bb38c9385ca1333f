"""The committed agents in agents/: files match their manifests, and they load and act."""

import json
from pathlib import Path

import pytest

from interp.checkpoint import load_agent
from interp.envs import EnvSpec
from interp.package import verify_package
from interp.rollout import run_episodes

AGENTS = sorted(p.parent for p in (Path(__file__).resolve().parents[1] / "agents").glob(
    "*/manifest.json"))


def test_there_is_a_bundled_agent():
    assert AGENTS, "agents/ holds no packaged agent (the README's main command needs one)"


@pytest.mark.parametrize("directory", AGENTS, ids=[p.name for p in AGENTS])
def test_agent_matches_manifest_and_plays(directory):
    manifest = verify_package(directory)
    agent = load_agent(directory / manifest["agent"])
    assert agent.manifest["steps"] == manifest["steps"]
    assert agent.manifest["env_spec"] == manifest["env_spec"]
    assert json.loads((directory / "manifest.json").read_text())["run"]["status"] == "complete"
    spec = EnvSpec.from_dict(manifest["env_spec"])
    episodes = run_episodes(agent.model, spec, episodes=4, num_envs=4, max_steps=50)
    assert episodes.valid.sum() == 4
