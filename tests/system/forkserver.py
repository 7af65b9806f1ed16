"""A fork server for tests that start the daemon many times (the chaos storms).

Each start of `python -m nautilus_hmm run` spends about 1.3 s of CPU importing the package
before it does anything (numpy, aiohttp, structlog, every layer of the daemon): in a storm of
50 SIGKILLs that is most of the run, and a kill "during start-up" mostly lands in the imports.
The server is one Python process that imports the daemon's modules once and then forks a
child for each start; the child runs exactly what `python -m nautilus_hmm ARGS` runs (the
package's `__main__` through runpy, with the start's argv, environment, working directory,
stdout on /dev/null and stderr appended to the start's log) and exits like an interpreter
(atexit handlers, non-daemon threads joined). It is a separate process with its own pid: a
SIGKILL kills it and only it, and nothing of the caller's memory is shared with it. What a
fork does not renew: the interpreter's string-hash seed (every child has the server's) and
modules' import-time state (the server imports, it configures nothing, starts no loop and
no thread of its own).

`ForkServer` is the caller's side; `ForkServer.spawn` returns a `ForkedProcess`, which
answers `poll`/`wait`/`send_signal`/`kill`/`pid`/`returncode` like `subprocess.Popen`. The
server reaps its children (it is their parent) and reports each exit over its stdout; a
signal goes through the server, which sends it only to a child it has not reaped, so a pid
reused by the system is never signalled. When the caller goes away (the server's stdin
closes) the server SIGKILLs the children still running and exits.

Protocol, one JSON object a line: requests on the server's stdin (`spawn` with argv, env,
cwd and the stderr path; `signal` with pid and signal number), answers on its stdout in
order, and `{"exit": pid, "code": returncode}` whenever a child ends (returncode as Popen
has it: -N for a signal N).
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# What `run` imports (the CLI builds every subcommand's parser); uvloop, idna and numpy.random
# are imported lazily by the daemon's start.
_PRELOAD_DEFAULT = ("nautilus_hmm.cli", "nautilus_hmm.node", "nautilus_hmm.bootstrap", "uvloop", "encodings.idna",
                    "numpy.random")


# ---------------------------------------------------------------- the server process


def _send(doc: dict[str, Any]) -> None:
    data = (json.dumps(doc) + "\n").encode()
    while data:
        data = data[os.write(1, data):]


def _child(req: dict[str, Any], wake_r: int, wake_w: int) -> None:
    """In the forked child: become `python -m nautilus_hmm ARGS` (never returns normally).

    SystemExit from the package's __main__ propagates to the top of the server's script,
    which no try/finally wraps, so the child ends the way an interpreter does."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.close(wake_r)
    os.close(wake_w)
    null = os.open(os.devnull, os.O_RDWR)
    err = os.open(req["stderr"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(err, 2)
    os.close(null)
    os.close(err)
    os.chdir(req["cwd"])
    os.environ.clear()
    os.environ.update(req["env"])
    sys.argv = ["-m", *req["argv"]]
    sys.path[0] = req["cwd"]  # as `python -m` has it: the working directory first
    import runpy

    runpy.run_module(req["module"], run_name="__main__", alter_sys=True)
    raise SystemExit(0)


def serve(preload: Iterable[str]) -> None:
    """The server's loop (see the module docstring)."""
    sys.path[0] = os.getcwd()  # not this file's directory: the children see what `-m` sees
    for name in preload:
        module = importlib.import_module(name)
        if name == "nautilus_hmm.cli":
            module.build_parser()  # imports what every subcommand's parser needs, as main() does
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda _sig, _frame: None)
    live: set[int] = set()
    pending = b""
    _send({"ready": os.getpid()})
    while True:
        readable, _, _ = select.select([0, wake_r], [], [])
        if wake_r in readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(wake_r, 512):
                    pass
        while live:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            live.discard(pid)
            _send({"exit": pid, "code": os.waitstatus_to_exitcode(status)})
        if 0 not in readable:
            continue
        chunk = os.read(0, 65536)
        if not chunk:  # the caller went away: take the children with us
            for pid in live:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            req = json.loads(line)
            if req["op"] == "spawn":
                pid = os.fork()
                if pid == 0:
                    _child(req, wake_r, wake_w)
                live.add(pid)
                _send({"pid": pid})
            elif req["op"] == "signal":
                sent = req["pid"] in live
                if sent:
                    os.kill(req["pid"], req["sig"])
                _send({"sent": sent})


# ---------------------------------------------------------------- the caller's side


class ForkedProcess:
    """A child of the fork server, with the part of `subprocess.Popen` the harnesses use."""

    def __init__(self, server: ForkServer, pid: int) -> None:
        self._server = server
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit code, or None while it runs."""
        if self.returncode is None:
            self.returncode = self._server.exit_code(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Block until it exits; subprocess.TimeoutExpired after `timeout` seconds."""
        if self.returncode is None:
            self.returncode = self._server.wait_exit(self.pid, timeout)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        """Signal it (nothing if it has already exited)."""
        if self.poll() is None:
            self._server.signal(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL."""
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        """SIGTERM."""
        self.send_signal(signal.SIGTERM)


class ForkServer:
    """Starts and talks to the server process (see the module docstring)."""

    def __init__(self, preload: Iterable[str] = (), module: str = "nautilus_hmm", start_timeout_s: float = 120.0) -> None:
        self.module = module
        self._proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), *_PRELOAD_DEFAULT, *preload],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._answers: queue.Queue[dict[str, Any]] = queue.Queue()
        self._exits: dict[int, int] = {}
        self._cond = threading.Condition()
        self._lock = threading.Lock()  # one request at a time: answers come in order
        self._reader = threading.Thread(target=self._read, name="forkserver-reader", daemon=True)
        self._reader.start()
        first = self._answer(start_timeout_s, "the fork server to import the daemon")
        assert "ready" in first, first

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            doc = json.loads(line)
            if "exit" in doc:
                with self._cond:
                    self._exits[doc["exit"]] = doc["code"]
                    self._cond.notify_all()
            else:
                self._answers.put(doc)
        self._answers.put({"closed": self._proc.wait()})
        with self._cond:
            self._cond.notify_all()

    def _answer(self, timeout_s: float, what: str) -> dict[str, Any]:
        try:
            doc = self._answers.get(timeout=timeout_s)
        except queue.Empty:
            raise AssertionError(f"fork server: no answer within {timeout_s} s waiting for {what}") from None
        if "closed" in doc:
            raise AssertionError(f"fork server exited {doc['closed']} waiting for {what}")
        return doc

    def _request(self, doc: dict[str, Any], what: str, timeout_s: float = 60.0) -> dict[str, Any]:
        assert self._proc.stdin is not None
        with self._lock:
            try:
                self._proc.stdin.write(json.dumps(doc).encode() + b"\n")
                self._proc.stdin.flush()
            except OSError as e:
                if e.errno != errno.EPIPE:
                    raise
            return self._answer(timeout_s, what)

    def spawn(self, args: list[str], env: Mapping[str, str], stderr: Path, cwd: str | None = None) -> ForkedProcess:
        """`python -m nautilus_hmm *args` as a fork of the server: stdout to /dev/null, stderr appended to `stderr`."""
        doc = self._request({"op": "spawn", "module": self.module, "argv": list(args), "env": dict(env),
                             "stderr": str(stderr), "cwd": cwd or os.getcwd()}, "a fork")
        return ForkedProcess(self, doc["pid"])

    def signal(self, pid: int, sig: int) -> bool:
        """Send `sig` to a child that has not exited; whether it was sent."""
        return bool(self._request({"op": "signal", "pid": pid, "sig": int(sig)}, "a signal")["sent"])

    def exit_code(self, pid: int) -> int | None:
        """A child's exit code if it has exited (as reported by the server)."""
        with self._cond:
            return self._exits.get(pid)

    def wait_exit(self, pid: int, timeout_s: float | None) -> int:
        """Block until the server reports the child's exit."""
        end = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while pid not in self._exits:
                if not self._reader.is_alive():
                    raise AssertionError(f"fork server gone before child {pid} exited")
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired(f"forked {self.module} {pid}", timeout_s or 0.0)
                self._cond.wait(left)
            return self._exits[pid]

    def close(self) -> None:
        """Stop the server (its running children are SIGKILLed)."""
        if self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._reader.join(timeout=5)
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> ForkServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    serve(sys.argv[1:])
