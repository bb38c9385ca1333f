"""interp summary: the one-page answer, its 'clears the controls' rule, errors, the CLI."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from interp.outputs import OutputError
from interp.summary import SummaryError, read_probe, summarize

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["embedder.block1.res1.resadd", "embedder.block2.res1.resadd", "embedder.relufc"]


def _eval(tmp_path: Path) -> Path:
    metrics = {"success": {"label": "success: coin collected", "kind": "rate", "value": 0.4,
                           "lo": 0.35, "hi": 0.45, "n": 400},
               "goal_misgeneralization": {"label": "reached the end without the coin",
                                          "kind": "rate", "value": 0.35, "lo": 0.3, "hi": 0.4,
                                          "n": 400},
               "length": {"label": "mean episode length", "kind": "mean", "value": 300.0,
                          "lo": 280.0, "hi": 320.0, "n": 400}}
    p = tmp_path / "eval.json"
    p.write_text(json.dumps({"checkpoint": "a.pt", "env_spec": {
        "variant": "coinrun-random-coin", "distribution_mode": "easy", "options": {}},
        "seed": 0, "num_envs": 50, "episodes_per_env": 8, "n": 400, "metrics": metrics}))
    return p


def _probe(tmp_path: Path, agent: list[tuple], random_init: list[tuple], pixels: tuple) -> Path:
    folder = tmp_path / "probe"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({
        "feature": {"name": "coin_visible"}, "metric": "auroc", "layers": LAYERS,
        "rows": 1000, "levels": 40}))
    rows = [("majority", "", (0.5, 0.5, 0.5)), ("pixels", "", pixels)]
    rows += [("agent", la, v) for la, v in zip(LAYERS, agent)]
    rows += [("random_agent", la, v) for la, v in zip(LAYERS, random_init)]
    with (folder / "results.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["probe", "layer", "metric", "value", "ci_low", "ci_high", "rows", "dim"])
        for probe, layer, (v, lo, hi) in rows:
            w.writerow([probe, layer, "auroc", v, lo, hi, 1000, 8])
            w.writerow([probe, layer, "accuracy", 0.99, 0.98, 1.0, 1000, 8])  # ignored
    return folder


def test_a_layer_clears_only_above_both_controls(tmp_path):
    p = read_probe(_probe(tmp_path, agent=[(0.9, 0.8, 0.95), (0.97, 0.95, 0.99),
                                           (0.97, 0.93, 0.99)],
                          random_init=[(0.6, 0.5, 0.7), (0.6, 0.5, 0.7), (0.6, 0.5, 0.94)],
                          pixels=(0.8, 0.7, 0.85)))
    # block1: above random-init but not pixels; relufc: above pixels but not random-init
    assert p.clearing == ["embedder.block2.res1.resadd"]
    assert p.best == "embedder.block2.res1.resadd"


def test_summary_page_and_figure(tmp_path):
    probe = _probe(tmp_path, agent=[(0.9, 0.8, 0.95)] * 3, random_init=[(0.85, 0.7, 0.9)] * 3,
                   pixels=(0.8, 0.7, 0.85))
    md = summarize("agents/x/agent.pt", [_eval(tmp_path)], [probe], tmp_path / "out")
    text = md.read_text()
    assert "n = 400" in text and "success: coin collected 40% [35, 45]" in text
    assert "No layer reads `coin_visible` beyond the controls" in text  # nothing clears here
    assert "mean episode length" not in text  # the page lists rates, not means
    assert (tmp_path / "out/summary.png").stat().st_size > 10_000
    with pytest.raises(OutputError, match="exists; pass --overwrite"):
        summarize("a", [_eval(tmp_path)], [], tmp_path / "out")


def test_cli_summary_and_its_errors(tmp_path):
    cli = [sys.executable, "-m", "cli", "summary", "agents/x/agent.pt"]
    ok = subprocess.run([*cli, "--eval", str(_eval(tmp_path)), "--out", str(tmp_path / "o")],
                        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "o/summary.md").is_file()
    bad = subprocess.run([*cli, "--probe", str(tmp_path), "--out", str(tmp_path / "p")],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode == 2 and "not an `interp probe --out` folder" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "p").exists()


def test_unmeasured_rates_and_foreign_folders(tmp_path):
    """A rate over no episodes (null in `interp eval --json`, e.g. corner first when the cheese
    is always in the corner) and a training run's folder passed as --probe gave tracebacks."""
    ev = _eval(tmp_path)
    data = json.loads(ev.read_text())
    data["metrics"]["corner_first"] = {"label": "top-right corner first", "kind": "rate",
                                       "value": None, "lo": None, "hi": None, "n": 0}
    ev.write_text(json.dumps(data))
    text = summarize("a", [ev], [], tmp_path / "out").read_text()
    assert "| top-right corner first | n/a |" in text and "corner first n/a" not in text
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text('{"status": "complete"}')
    (run / "results.csv").write_text("steps,return\n1,2\n")
    with pytest.raises(SummaryError, match="not an `interp probe --out` folder .*'metric'"):
        read_probe(run)
    del data["env_spec"]
    ev.write_text(json.dumps(data))
    with pytest.raises(SummaryError, match="not the layout of `interp eval --json`"):
        summarize("a", [ev], [], tmp_path / "out2")
