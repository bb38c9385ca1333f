"""RemoteVecEnv and the one-asset-set-per-process guard."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from interp.envs import EnvSpec, InvalidStateError, VecEnv, make_env
from interp.envs.assets import COLOURS
from interp.envs.geometry import to_pixels
from interp.envs.remote import RemoteEnvError, RemoteVecEnv


def run_python(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout)


def test_remote_matches_in_process_on_stock_assets():
    spec = EnvSpec("maze")
    actions = np.random.default_rng(1).integers(0, 15, size=(40, 4))
    with VecEnv(spec, num=4, seed=5) as local, RemoteVecEnv(spec, num=4, seed=5) as remote:
        assert remote.num == 4 and remote.num_actions == local.num_actions
        assert remote.spec == spec
        for a in actions:
            local.act(a)
            remote.act(a)
            for x, y in zip(local.observe(), remote.observe()):
                assert x.dtype == y.dtype and (x == y).all()
        assert local.get_all_states() == remote.get_all_states()
        assert local.get_info() == remote.get_info()
        lab_l, lab_r = local.labels(), remote.labels()
        assert all(np.array_equal(lab_l[k], lab_r[k], equal_nan=True) for k in lab_l)

        # state round trip through the worker, and obs refresh after set_state
        state = local.get_state(0)
        remote.set_state(1, state)
        assert remote.get_state_bytes(1) == state.to_bytes()
        assert (remote.observe()[1][1] == local.observe()[1][0]).all()


def test_two_asset_sets_in_one_session():
    opts = {"distractor": "red-gem", "maze_size": 5}
    with make_env("colour-shape", num=3, seed=2, options=opts) as yellow, \
            make_env("colour-shape", num=3, seed=2, options={**opts, "goal": "cyan-line"}) as cyan:
        assert yellow.resource_root != cyan.resource_root
        _, obs_y, _ = yellow.observe()
        _, obs_c, _ = cyan.observe()
        for i in range(3):
            s = yellow.get_state(i)
            assert s.to_bytes() == cyan.get_state(i).to_bytes()  # same levels
            (y, x), = np.argwhere(s.grid == 2)
            px, py = (int(v) for v in to_pixels(s, x + 0.5, y + 0.5))
            assert (obs_y[i, py, px] == COLOURS["yellow"]).all()
            assert (obs_c[i, py, px] == COLOURS["cyan"]).all()


def test_worker_errors_come_back_as_exceptions():
    env = RemoteVecEnv(EnvSpec("maze"), num=2)
    state = env.get_state(0)
    state.entities = state.entities[:0]
    with pytest.raises(InvalidStateError, match="no player") as info:
        env.set_state(0, state)
    assert "env worker" in "".join(info.value.__notes__)
    env.act(np.zeros(2, int))  # the worker is still serving
    assert env.observe()[1].shape == (2, 64, 64, 3)
    env.close()
    env.close()  # idempotent
    with pytest.raises(RemoteEnvError, match="closed"):
        env.observe()


def test_worker_start_errors_are_raised():
    with pytest.raises(Exception, match="engine|resource|asset|exist|No such"):
        RemoteVecEnv(EnvSpec("maze"), num=1, resource_root="/nonexistent/assets/")


def test_second_asset_set_in_one_process_is_an_error():
    r = run_python(
        "from interp.envs import EnvSpec, VecEnv, EnvConfigError\n"
        "from interp.envs.make import make_local\n"
        "VecEnv(EnvSpec('maze'), num=1).close()\n"
        "VecEnv(EnvSpec('maze'), num=1).close()  # the same set again is fine\n"
        "try:\n"
        "    make_local(EnvSpec('maze-yellow-line'), num=1)\n"
        "except EnvConfigError as e:\n"
        "    print('RAISED', e)\n")
    assert r.returncode == 0, r.stderr
    assert "RAISED this process already loaded the sprites of 'stock procgen assets'" in r.stdout
    assert "make_env" in r.stdout


def test_worker_dies_with_its_parent():
    r = subprocess.Popen(
        [sys.executable, "-c",
         "import time\n"
         "from interp.envs import make_env\n"
         "env = make_env('maze-yellow-line', num=1)\n"
         "print(env._proc.pid, flush=True)\n"
         "time.sleep(60)\n"], stdout=subprocess.PIPE, text=True)
    worker = int(r.stdout.readline())
    os.kill(r.pid, signal.SIGKILL)
    r.wait()
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(worker, signal.SIGKILL)
    pytest.fail("the env worker outlived its parent")


def test_requested_labels_are_of_the_states_before_the_next_act():
    spec = EnvSpec("coinrun")
    with RemoteVecEnv(spec, num=3, seed=4) as remote, make_env(spec, num=3, seed=4) as local:
        for t in range(12):
            pending = remote.request_labels(np.array([0, 2]))
            expected = local.labels(np.array([0, 2]))
            actions = np.full(3, 7 if t % 3 else 5)
            remote.act(actions)
            local.act(actions)
            got = pending.result()
            for key in ("agent_x", "agent_y", "level_seed", "goal_touched"):
                np.testing.assert_array_equal(got[key], expected[key])
            np.testing.assert_array_equal(remote.observe()[1], local.observe()[1])


def test_script_without_main_guard_gets_the_fix(tmp_path):
    script = tmp_path / "unguarded.py"
    script.write_text("from interp.envs import EnvSpec\nfrom interp.envs.remote import RemoteVecEnv\n"
                      "RemoteVecEnv(EnvSpec('maze'), num=1).close()\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert "exited while starting" in proc.stderr and '__name__ == "__main__"' in proc.stderr


def test_ctrl_c_reaches_the_parent_only():
    """Every Ctrl-C printed a KeyboardInterrupt traceback from the env worker process: the
    terminal sends SIGINT to the whole process group, worker included."""
    r = subprocess.Popen(
        [sys.executable, "-c",
         "import numpy as np\n"
         "from interp.envs import make_env\n"
         "env = make_env('coinrun', num=2, remote=True)\n"
         "print('ready', flush=True)\n"
         "try:\n"
         "    while True:\n"
         "        env.act(np.zeros(2, int))\n"
         "        env.observe()\n"
         "except KeyboardInterrupt:\n"
         "    env.close()\n"
         "    print('closed', flush=True)\n"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert r.stdout.readline() == "ready\n"
    time.sleep(0.5)
    os.killpg(r.pid, signal.SIGINT)  # what Ctrl-C on a terminal does
    out, err = r.communicate(timeout=60)
    assert "closed" in out, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
