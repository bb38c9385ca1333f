"""What every command shares: outputs checked before any work, one-line errors, warnings and
Ctrl-C, progress in logs, and the bad inputs of the reliability pass (issue 16)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import interp.progress
from cli import app
from interp.checkpoint import save_agent
from interp.envs import EnvSpec
from interp.models import ImpalaAgent
from interp.progress import Progress

REPO = Path(__file__).resolve().parents[1]
AGENT = REPO / "agents" / "coinrun-cpu" / "agent.pt"
UNWRITABLE = Path("/sys/interp-test")  # /sys refuses new files, even to root


class WorkStarted(AssertionError):
    """A command started its work although its input was bad."""


@pytest.fixture
def no_work(monkeypatch):
    """Make every kind of work a command can start fail loudly: envs, probes, training,
    packaging, experiments."""
    def started(*args, **kwargs):
        raise WorkStarted("work started before the bad input was refused")

    import interp.experiments
    import interp.package
    import interp.train
    import probes
    from interp.envs.vecenv import VecEnv
    from interp.envs.remote import RemoteVecEnv

    for target, name in [(VecEnv, "__init__"), (RemoteVecEnv, "__init__"),
                         (probes, "run_probe"), (interp.train, "train"),
                         (interp.package, "load_agent"), (interp.experiments, "load_agent")]:
        monkeypatch.setattr(target, name, started)


def invoke(*args) -> tuple[int, str]:
    res = CliRunner().invoke(app, [str(a) for a in args])
    if isinstance(res.exception, WorkStarted):
        raise res.exception
    assert "Traceback" not in res.output, res.output
    return res.exit_code, res.output


@pytest.fixture
def finished_run(tmp_path) -> Path:
    """A folder that passes for a finished `interp train` run (no checkpoint is read)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"status": "complete"}))
    for name in ("config.yaml", "progress.csv"):
        (run / name).write_text("x\n")
    return run


# (command arguments with {out} for the output path, the output option's name)
WRITERS = [
    (["envs", "show", "coinrun", "--out", "{out}.png"], "--out"),
    (["eval", AGENT, "--env", "coinrun", "--out", "{out}.md"], "--out"),
    (["eval", AGENT, "--env", "coinrun", "--json", "{out}.json"], "--json"),
    (["record", AGENT, "--episodes", "1", "--out", "{out}.h5"], "--out"),
    (["ablate", AGENT, "--env", "coinrun", "--input-colour", "R", "--report", "{out}"],
     "--report"),
    (["attribute", AGENT, "--env", "coinrun", "--out", "{out}"], "--out"),
    (["probe", "rec.h5", "--feature", "coin", "--out", "{out}"], "--out"),
    (["experiment", "permeable-wall", AGENT, "--out", "{out}"], "--out"),
    (["summary", "x", "--eval", "e.json", "--out", "{out}"], "--out"),
    (["agents", "import", AGENT, "--env", "coinrun", "--distribution-mode", "easy", "--out",
      "{out}.pt"], "--out"),
    (["train", "coinrun-cpu", "--out", "{out}"], "--out"),
    (["sweep", "report", "pop.csv", "--out", "{out}"], "--out"),
    (["agents", "package", "{run}", "--out", "{out}"], "--out"),
]


@pytest.mark.parametrize("args, option", WRITERS,
                         ids=lambda v: v[0] if isinstance(v, list) else "")
def test_unwritable_outputs_are_refused_before_any_work(args, option, tmp_path, no_work,
                                                        finished_run):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    for out, message in [(blocker / "out", "a-file is a file, not a folder"),
                         (UNWRITABLE / "out", "cannot write in /sys")]:
        code, output = invoke(*(str(a).format(out=out, run=finished_run) for a in args))
        assert code == 2 and f"error: {option} {out}" in output and message in output, output


# train, package and sweep have their own rules for an existing folder; summary writes two
# files into a folder that may hold other results (tests/test_summary.py)
@pytest.mark.parametrize("args, option", [w for w in WRITERS
                                          if w[0][0] not in ("train", "agents", "summary",
                                                             "sweep")],
                         ids=lambda v: v[0] if isinstance(v, list) else "")
def test_existing_results_are_kept_without_overwrite(args, option, tmp_path, no_work):
    out = tmp_path / "result"
    paths = [str(a).format(out=out) for a in args]
    target = Path(paths[paths.index(option) + 1])
    if target.suffix:
        target.write_text("an earlier result")
    else:
        target.mkdir()
        (target / "results.csv").write_text("an earlier result")
    code, output = invoke(*paths)
    assert code == 2 and "--overwrite" in output, output
    assert "already exists" in output or "already holds files" in output


def test_outputs_of_one_command_must_differ(tmp_path, no_work):
    code, output = invoke("eval", AGENT, "--env", "coinrun", "--out", tmp_path / "x",
                          "--json", tmp_path / "x")
    assert code == 2 and "--out and --json name the same path" in output


def test_user_errors_warnings_and_ctrl_c_are_one_line_each(monkeypatch):
    import warnings

    import interp.evaluate
    from interp.errors import InterpWarning

    def interrupted(*args, **kwargs):
        warnings.warn(InterpWarning("careful"))
        err = KeyboardInterrupt()
        err.add_note("x.h5 is marked incomplete")
        raise err

    monkeypatch.setattr(interp.evaluate, "evaluate_agent", interrupted)
    res = CliRunner().invoke(app, ["eval", str(AGENT), "--env", "coinrun"])
    assert res.exit_code == 130
    assert res.output.splitlines() == ["warning: careful",
                                       "interrupted: x.h5 is marked incomplete"]


def test_progress_lines_when_not_on_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(interp.progress, "PLAIN_EVERY_S", 0.0)
    with Progress(4, "eval on coinrun") as bar:
        bar.update(1)
        bar.update(3)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("eval on coinrun: 0/4 episodes (0%), ")
    assert lines[1].startswith("eval on coinrun: 1/4 episodes (25%), ") and "left" in lines[1]
    assert lines[-1].startswith("eval on coinrun: 4/4 episodes (100%), ")
    with Progress(4, "silent", enabled=False) as bar:
        bar.update(4)
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_eval_reports_progress_in_a_pipe(tmp_path):
    """`interp eval` with stderr to a pipe (a log) prints plain progress lines."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([str(Path(sys.executable).parent / "interp"), "eval", str(AGENT),
                        "--env", "coinrun", "--episodes", "2", "--num-envs", "2",
                        "--device", "cpu"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "eval on coinrun: 2/2 episodes (100%)" in r.stderr


# -- bad inputs of the reliability pass ------------------------------------------------------
@pytest.fixture
def stats_file(tmp_path) -> Path:
    path = tmp_path / "stats.pt"
    path.write_bytes(b"not a torch file")
    return path


@pytest.mark.parametrize("args, message", [
    (["eval", AGENT, "--env", "coinrun", "--seed", "-1"], "Invalid value for '--seed'"),
    (["experiment", "value-vs-stage", AGENT, "--out", "x", "--seed", "-2"],
     "Invalid value for '--seed'"),
    (["eval", AGENT, "--env", "coinrun", "--distribution-mode", "memory"],
     "'memory' is not available for coinrun (coinrun); use one of easy, hard"),
    (["eval", AGENT, "--env", "maze", "--distribution-mode", "extreme"],
     "'extreme' is not available for maze"),
    (["envs", "show", "coinrun", "--out", "x.png", "--distribution-mode", "exploration"],
     "'exploration' is not available"),
    (["eval", AGENT.parent, "--env", "coinrun"],
     f"{AGENT.parent} is a folder, not a checkpoint file; it holds agent.pt"),
    (["record", AGENT, "--episodes", "1", "--out", "{tmp}"], "is a folder; give a file name"),
    (["envs", "show", "coinrun", "--out", "{tmp}/x.jpg"], "give a .png file name"),
    (["eval", AGENT, "--env", "coinrun", "--episodes", "5000", "--num-envs", "5000"],
     "5,000 envs at once would need about 10 GB"),
    (["ablate", AGENT, "--env", "coinrun", "--layer", "embedder.block2.res1.resadd", "--all",
      "--episodes", "256", "--num-envs", "256", "--batch", "64"],
     "35 group(s) of 256 envs; lower --num-envs or --batch"),
    (["ablate", AGENT, "--env", "coinrun", "--input-colour", "R", "--mode", "mean", "--stats",
      "{tmp}/missing.pt"], "no activation-stats file at"),
    (["ablate", AGENT, "--env", "coinrun", "--input-colour", "R", "--mode", "mean", "--stats",
      "{stats}"], "not an activation-stats file (written by collect_stats"),
    (["ablate", AGENT, "--env", "coinrun", "--input-colour", "R", "--stats", "{stats}"],
     "--stats is used by --mode mean or resample"),
    (["probe", "{tmp}/missing.h5", "--feature", "coin", "--out", "{tmp}/p"],
     "no recording file at"),
    (["probe", "{tmp}/missing.h5", "--feature", "coin", "--out", "{tmp}/p", "--n-boot",
      "1000000"], "use at most 10,000"),
])
def test_bad_inputs_name_the_fix(args, message, tmp_path, stats_file, monkeypatch):
    import interp.rollout

    def started(*a, **k):
        raise WorkStarted("an episode loop started")
    monkeypatch.setattr(interp.rollout, "make_env", started)  # the checks come first
    code, output = invoke(*(str(a).format(tmp=tmp_path, stats=stats_file) for a in args))
    assert code == 2 and message in output.replace("\n", " "), output


def test_packaging_a_run_into_itself_is_refused(finished_run):
    code, output = invoke("agents", "package", finished_run, "--out", finished_run,
                          "--overwrite")
    assert code == 2 and "is the run directory itself" in output


def test_an_env_worker_that_cannot_start_is_cleaned_up(monkeypatch):
    import multiprocessing.context

    from interp.envs.remote import RemoteVecEnv

    def refuse(self):
        raise RuntimeError("no new processes here")
    unraisable = []
    monkeypatch.setattr(multiprocessing.context.SpawnProcess, "start", refuse)
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    with pytest.raises(RuntimeError, match="no new processes"):
        RemoteVecEnv(EnvSpec("maze"), num=1)
    import gc
    gc.collect()
    assert not unraisable  # was: "can only join a started process" from __del__


def test_agent_on_another_game_warns(tmp_path):
    ckpt = save_agent(tmp_path / "a.pt", ImpalaAgent(), seed=0, steps=0,
                      env_spec=EnvSpec("coinrun").to_dict())
    from interp.checkpoint import load_agent
    from interp.errors import InterpWarning

    agent = load_agent(ckpt)
    with pytest.warns(InterpWarning, match="trained on coinrun .coinrun., this runs it on maze"):
        agent.env_spec("maze-cheese-top-right")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", InterpWarning)
        agent.env_spec("coinrun-random-coin")  # the same game: no warning
