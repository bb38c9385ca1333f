"""Envs that run in a worker process, each with its own asset set.

Procgen's C++ loads sprites once per process, from the first env created, and a later env
with another ``resource_root`` silently draws the first set.
:func:`~interp.envs.assets.claim_assets` (called by every :class:`~interp.envs.vecenv.VecEnv`)
turns that into an error. :class:`RemoteVecEnv` runs
a VecEnv in its own process, so envs with different sprites (a yellow-line training env and
a red-line-vs-yellow-gem test env) live side by side in one Python session.

    with RemoteVecEnv(spec, num=8, resource_root=root) as env:
        env.act(actions); reward, obs, first = env.observe()
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import traceback
from collections import deque
from multiprocessing import shared_memory

import numpy as np

from interp.envs.spec import EnvSpec
from interp.envs.state import GameState
from interp.envs.vecenv import env_class
from interp.errors import InterpError

class RemoteEnvError(InterpError, RuntimeError):
    """The env worker process died (e.g. the engine aborted)."""


OBS_SHAPE = (64, 64, 3)


def _worker(conn, shm_name: str, spec: EnvSpec, num: int, seed: int, num_threads: int,
            resource_root: str | None, engine_options: dict | None) -> None:
    """Serve one VecEnv: each request (method, args) gets one reply ("ok" | "error", value).
    Ctrl-C is the parent's to handle: the worker ignores it and stops when told or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    shm = shared_memory.SharedMemory(name=shm_name)
    frames = np.ndarray((num, *OBS_SHAPE), dtype=np.uint8, buffer=shm.buf)
    env = None

    def observe():  # frames go through shared memory, reward and first through the pipe
        reward, obs, first = env.observe()
        frames[:] = obs  # noqa: F821 (deleted only after the serve loop ends)
        return reward, first

    def reply(fn, *args) -> bool:
        try:
            msg = ("ok", fn(*args))
        except Exception as e:  # noqa: BLE001 - sent back to the parent
            msg = ("error", (e, traceback.format_exc()))
        try:
            conn.send(msg)
        except Exception as e:  # noqa: BLE001 - e.g. an exception that does not pickle
            conn.send(("error", (RuntimeError(repr(e)), traceback.format_exc())))
        return msg[0] == "ok"

    def make():
        nonlocal env
        env = env_class(spec.get_variant())(
            spec, num=num, seed=seed, num_threads=num_threads, resource_root=resource_root,
            engine_options=engine_options)
        return env.num_actions

    def step(actions):
        env.act(actions)
        return observe()

    try:
        if not reply(make):
            return
        while True:
            try:
                cmd, args = conn.recv()
            except EOFError:  # the parent is gone
                return
            if cmd == "close":
                return
            fn = {"act": step, "observe": observe}.get(cmd) or getattr(env, cmd)
            reply(fn, *args)
    finally:
        del frames
        shm.close()
        if env is not None:
            env.close()


class Reply:
    """A result the worker owes; ``result()`` reads replies up to this one."""

    def __init__(self, env: RemoteVecEnv, convert=None):
        self.env, self.convert = env, convert
        self.done, self.value, self.error = False, None, None

    def result(self):
        while not self.done:
            self.env._receive()
        if self.error is not None:
            raise self.error
        return self.value


class RemoteVecEnv:
    """A :class:`~interp.envs.vecenv.VecEnv` in a worker process, with the same interface.

    ``act`` returns at once; the step's reward / obs / first arrive with the next
    ``observe``. Worker errors are raised here with the worker's traceback as a note.
    """

    def __init__(self, spec: EnvSpec, num: int, seed: int = 0, num_threads: int = 2,
                 resource_root: str | None = None, engine_options: dict | None = None):
        self.spec, self.num, self.seed = spec, num, int(seed)
        self.resource_root = resource_root
        self._closed, self._obs = False, None
        self._step: Reply | None = None  # the reply of the last act, until collected
        self._owed: deque[Reply] = deque()  # replies not yet read, in request order
        self._shm = shared_memory.SharedMemory(create=True, size=num * int(np.prod(OBS_SHAPE)))
        self._frames = np.ndarray((num, *OBS_SHAPE), dtype=np.uint8, buffer=self._shm.buf)
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(
            target=_worker, name=f"interp-env-{spec.variant}", daemon=True,
            args=(child, self._shm.name, spec, num, self.seed, num_threads, resource_root,
                  engine_options))
        # SIGINT stays blocked in the child from its first instruction (the mask is inherited):
        # a Ctrl-C while it starts reaches only this process
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            self._proc.start()
        except BaseException:
            self.close()
            raise
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        child.close()
        try:
            self.num_actions = self._reply(starting=True)
        except BaseException:
            self.close()
            raise

    def _reply(self, starting: bool = False):
        """The worker's next message: its result, or its exception re-raised here."""
        try:
            status, result = self._conn.recv()
        except (EOFError, OSError):
            self._proc.join(timeout=5)
            if starting:
                raise RemoteEnvError(
                    f"the env worker of {self.spec.variant!r} exited while starting (exit code "
                    f"{self._proc.exitcode}); its error is printed above. Two usual causes: the "
                    "engine aborts on missing or unreadable asset files (check resource_root), "
                    "and workers start with 'spawn', which re-imports your main module: in a "
                    "script, put the code that makes envs under "
                    "`if __name__ == \"__main__\":`.") from None
            raise RemoteEnvError(
                f"the env worker of {self.spec.variant!r} died (exit code "
                f"{self._proc.exitcode}); the engine aborts its process on invalid input, "
                "e.g. a state it cannot load. Make a new env.") from None
        if status == "error":
            exc, tb = result
            exc.add_note(f"raised in the env worker process:\n{tb}")
            raise exc
        return result

    def _send(self, cmd: str, *args, convert=None) -> Reply:
        """Send a request now; its result comes from the returned :class:`Reply`. A step's
        frames are copied out of shared memory before the worker is asked anything else."""
        self._check_open()
        if self._step is not None:
            self._obs, self._step = self._step.result(), None
        self._conn.send((cmd, args))
        reply = Reply(self, convert)
        self._owed.append(reply)
        return reply

    def _check_open(self) -> None:
        if self._closed:
            raise RemoteEnvError(f"the {self.spec.variant!r} env is closed")

    def _receive(self) -> None:
        """Read the oldest owed reply (replies come in request order)."""
        reply = self._owed.popleft()
        try:
            result = self._reply()
            reply.value = reply.convert(result) if reply.convert else result
        except RemoteEnvError:
            raise
        except Exception as e:  # noqa: BLE001 - raised by whoever asks for this reply
            reply.error = e
        reply.done = True

    def _call(self, cmd: str, *args):
        return self._send(cmd, *args).result()

    def _frames_of(self, result) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        reward, first = result
        return reward, self._frames.copy(), first

    # -- gym3 interface -------------------------------------------------------------
    def observe(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(reward float32 (num,), obs uint8 (num, 64, 64, 3), first bool (num,))."""
        self._check_open()
        if self._step is not None:
            self._obs, self._step = self._step.result(), None
        if self._obs is None:
            self._obs = self._send("observe", convert=self._frames_of).result()
        return self._obs

    def act(self, actions) -> None:
        actions = np.asarray(actions)
        if actions.shape != (self.num,):
            raise ValueError(f"expected {self.num} actions, got shape {actions.shape}")
        step = self._send("act", actions, convert=self._frames_of)
        self._step, self._obs = step, None

    def get_info(self) -> list[dict]:
        return self._call("get_info")

    def labels(self, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        return self._call("labels", rows)

    def request_labels(self, rows: np.ndarray | None = None) -> Reply:
        """Ask for the labels of the current states now and collect them later with
        ``.result()``: the worker computes them while this process runs the policy; a
        following ``act`` is queued behind them, so they are the labels of these states."""
        return self._send("labels", rows)

    # -- state access ----------------------------------------------------------------
    def get_state_bytes(self, i: int) -> bytes:
        return self._call("get_state_bytes", i)

    def get_state(self, i: int) -> GameState:
        """The worker's parsed state (a keys-chests state for that game)."""
        return self._call("get_state", i)

    def set_state(self, i: int, state: GameState | bytes) -> None:
        raw = bytes(state) if isinstance(state, (bytes, bytearray)) else state.to_bytes()
        self._call("set_state", i, raw)
        self._obs = None  # set_state re-renders

    def get_all_states(self) -> list[bytes]:
        return self._call("get_all_states")

    def set_all_states(self, states: list[bytes]) -> None:
        self._call("set_all_states", [bytes(s) for s in states])
        self._obs = None

    # -- lifetime --------------------------------------------------------------------
    def close(self) -> None:
        """Stop the worker; safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        if self._proc.pid is not None:  # None: the worker never started
            try:
                for _ in self._owed:  # drain owed replies, or the worker blocks on sending them
                    self._conn.recv()
                self._conn.send(("close", ()))
                self._proc.join(timeout=5)
            except (OSError, EOFError):
                pass
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(timeout=5)
        self._conn.close()
        del self._frames
        self._shm.close()
        self._shm.unlink()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_proc", None) is not None:
            self.close()
