"""Starting and stopping wardflow's own processes (services, simulator) for `wardflow up`."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from services.common.embedded import die_with_parent


def wardflow_command() -> list[str]:
    """The `wardflow` console script of this environment (or `python -m services`)."""
    script = Path(sys.executable).with_name("wardflow")
    return [str(script)] if script.exists() else [sys.executable, "-m", "services"]


@dataclass
class ManagedProcess:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def terminate(self) -> None:
        if self.alive():
            self.process.terminate()

    def wait_or_kill(self, timeout_seconds: float) -> int:
        try:
            return self.process.wait(timeout_seconds)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def start_process(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> ManagedProcess:
    """Start `wardflow <args>` with `env` on top of ours; output goes to `<log_dir>/<name>.log`."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [*wardflow_command(), *args],
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
            start_new_session=True,  # Ctrl-C reaches the launcher only; it stops us in order
        )
    return ManagedProcess(name, process, log_path)


def stop_all(processes: list[ManagedProcess], timeout_seconds: float = 20.0) -> None:
    """SIGTERM every process, then wait; whatever has not stopped in time is killed."""
    for managed in processes:
        managed.terminate()
    for managed in processes:
        managed.wait_or_kill(timeout_seconds)
