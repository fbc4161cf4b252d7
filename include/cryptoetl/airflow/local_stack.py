"""The processes behind ``make run`` and ``make ui``: the offline sandbox and ``airflow standalone``.

``Stack`` starts the sandbox (a thread of this process) and ``airflow standalone`` (a child in a
session of its own, so that a terminal's Ctrl-C reaches only this process, which then stops the
whole group in order) and stops both on the way out, whatever happens: an exception or an
interrupt at any moment, including while Airflow starts, leaves no process behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def _say(message: str) -> None:
    """Print, but never fail: while stopping, stdout may be a pipe whose reader is gone (Ctrl-C
    kills `make run | tee` too), and a BrokenPipeError must not cut the clean-up short."""
    try:
        print(message, flush=True)
    except (OSError, ValueError):
        pass


def airflow_command(*args: str) -> list[str]:
    """The ``airflow`` of this interpreter's environment."""
    return [str(Path(sys.executable).with_name("airflow")), *args]


class Stack:
    """The sandbox and ``airflow standalone``; a context manager.

    ``child_env(sandbox)`` returns the environment the Airflow processes (and so every task) get,
    given the running sandbox. ``command`` and ``health_url`` are parameters so the process
    handling can be tested with a stand-in for Airflow.
    """

    def __init__(self, port: int, sandbox_port: int, *, child_env: Callable[[object], Mapping[str, str]],
                 log_path: Path, command: Sequence[str] | None = None, health_timeout: float = 600,
                 stop_grace: Sequence[float] = (20, 15, 10)):
        self.port = port
        self.sandbox_port = sandbox_port
        self.child_env = child_env
        self.log_path = log_path
        self.command = list(command) if command is not None else airflow_command("standalone")
        self.health_timeout = health_timeout
        self.stop_grace = stop_grace  # seconds allowed after SIGINT, SIGTERM, SIGKILL
        self.proc: subprocess.Popen | None = None
        self.sandbox = None
        self._log = None

    def __enter__(self) -> Stack:
        try:
            self._start()
            self._wait_healthy()
        except BaseException:  # KeyboardInterrupt included: stop what was started, then re-raise
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _start(self) -> None:
        from cryptoetl.sandbox.server import SandboxServer

        self.sandbox = SandboxServer(port=self.sandbox_port)
        if faults := os.environ.get("CRYPTOETL_SANDBOX_FAULTS"):  # e.g. to watch retries: sandbox/server.py
            self.sandbox.set_faults(json.loads(faults))
            print(f"· sandbox faults injected: {faults}")
        self.sandbox.start()
        print(f"· sandbox APIs (SYNTHETIC data) on {self.sandbox.root_url}: " + ", ".join(self.sandbox.urls()))
        env = dict(os.environ)
        env.update(self.child_env(self.sandbox))
        os.environ.update(env)  # this process's own Airflow CLI calls and summary see the same settings
        # standalone starts its components as `airflow ...` from PATH: put this venv first.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        print(f"· starting airflow standalone (log: {self.log_path})")
        self._log = open(self.log_path, "a")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)

    def _wait_healthy(self) -> None:
        """Until the scheduler reports healthy. Generous: a loaded 2-core machine starts slowly."""
        url = f"http://127.0.0.1:{self.port}/api/v2/monitor/health"
        deadline = time.monotonic() + self.health_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"airflow standalone exited early (code {self.proc.returncode}); "
                                 f"see {self.log_path}")
            try:
                with urllib.request.urlopen(url, timeout=10) as resp:
                    health = json.load(resp)
                if health.get("scheduler", {}).get("status") == "healthy":
                    print(f"· Airflow is up: http://localhost:{self.port}")
                    return
            except (OSError, ValueError):
                pass
            time.sleep(2)
        raise SystemExit(f"Airflow did not become healthy within {self.health_timeout:.0f}s; see {self.log_path}")

    def stop(self) -> None:
        """Stop Airflow's whole process group, then the sandbox. Safe to call twice."""
        # Ctrl-C again while stopping must not leave the group behind: ignore SIGINT meanwhile.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            if self.proc is not None and _group_alive(self.proc):
                _say("· stopping Airflow")
                # standalone stops cleanly on SIGINT; SIGINT is ignored when started from a
                # non-interactive background shell, so fall back to SIGTERM, then SIGKILL. Wait for
                # the whole process group, not just standalone: its scheduler can outlive it.
                signals = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)
                for sig, grace in zip(signals, self.stop_grace, strict=True):
                    if signal_group_and_wait(self.proc, sig, grace):
                        break
            if self.sandbox is not None:
                self.sandbox.stop()
                self.sandbox = None
            if self._log is not None:
                self._log.close()
                self._log = None
        finally:
            signal.signal(signal.SIGINT, previous)


def _group_alive(leader: subprocess.Popen) -> bool:
    leader.poll()
    try:
        os.killpg(leader.pid, 0)
    except ProcessLookupError:
        return False
    return True


def signal_group_and_wait(leader: subprocess.Popen, sig: int, grace: float) -> bool:
    """Send ``sig`` to the leader's process group; True once every member has exited."""
    pgid = leader.pid
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        leader.poll()  # reap the leader, or its zombie keeps the group alive
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.5)
    return False
