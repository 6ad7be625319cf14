"""A real E-Key stack for the Python tests: `ekey up` in a temporary folder on free ports.

The binaries come from EKEY_BIN_DIR (default: the package's `.build/debug`), the folder
`make test` builds. Each `Stack` owns its PKI, demo DPoP key and stack.yaml, and stops
every process it started when the `with` block ends.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from free_ports import free_port

REPO = Path(__file__).resolve().parents[2]
BIN_DIR = Path(os.environ.get("EKEY_BIN_DIR", REPO / ".build" / "debug"))

PORT_FLAGS = (
    "issuer-port", "gateway-port", "jwks-port", "upstream-port",
    "issuer-admin-port", "gateway-admin-port", "jwks-admin-port",
)


@dataclass
class Stack:
    """`ekey up` running in `folder`; `ports` maps each port flag (without `--`) to its port."""

    folder: Path
    ports: dict[str, int]
    process: subprocess.Popen | None = None
    output: list[str] = field(default_factory=list)

    @property
    def pki(self) -> Path:
        return self.folder / "pki"

    @property
    def ca(self) -> str:
        return str(self.pki / "ca.crt")

    @property
    def dpop_key(self) -> Path:
        """The demo DPoP private key (PEM), registered with the issuer as client `demo`."""
        return self.folder / "demo-dpop.key"

    @property
    def workload_cert(self) -> tuple[str, str]:
        """The demo workload's client certificate and key (SPIFFE ID spiffe://example.org/demo/checkout)."""
        return (str(self.pki / "workload.crt"), str(self.pki / "workload.key"))

    @property
    def admin_cert(self) -> tuple[str, str]:
        return (str(self.pki / "admin.crt"), str(self.pki / "admin.key"))

    def url(self, service: str, path: str = "") -> str:
        """https://localhost:PORT/path for `issuer`, `gateway` or `jwks`."""
        return f"https://localhost:{self.ports[service + '-port']}{path}"

    def admin_url(self, service: str, path: str = "") -> str:
        """http://127.0.0.1:PORT/path of a service's admin listener (/healthz, /readyz, /metrics)."""
        return f"http://127.0.0.1:{self.ports[service + '-admin-port']}{path}"

    @property
    def upstream_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['upstream-port']}"

    def ekey(self, *arguments: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run the `ekey` CLI in the stack's folder's parent, as a user next to `.ekey/` would."""
        return subprocess.run(
            [str(BIN_DIR / "ekey"), *arguments], cwd=self.folder.parent,
            capture_output=True, text=True, check=check, timeout=timeout)

    def start(self, ready_timeout: float = 90, arguments: tuple[str, ...] = (),
              overrides: dict[str, str] | None = None) -> "Stack":
        """Runs `ekey up` with the stack's ports and `arguments`; `overrides` are EKEY_*
        config variables for the services (such as EKEY_GATEWAY_AUTHORIZE_GRPC_LISTEN)."""
        command = [str(BIN_DIR / "ekey"), "up", "--dir", str(self.folder), *arguments]
        for flag in PORT_FLAGS:
            command += [f"--{flag}", str(self.ports[flag])]
        # EKEY_* variables override config keys in the services; the harness's own
        # (EKEY_BIN_DIR, EKEY_PYTHON) are not for them.
        environment = {name: value for name, value in os.environ.items() if not name.startswith("EKEY_")}
        environment.update(overrides or {})
        self.process = subprocess.Popen(
            command, cwd=self.folder.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True, env=environment)
        ready = threading.Event()

        def read() -> None:
            assert self.process and self.process.stdout
            for line in self.process.stdout:
                self.output.append(line)
                if line.startswith("E-Key is running"):
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + ready_timeout
        while not ready.wait(0.1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("ekey up did not become ready:\n" + "".join(self.output[-40:]))
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
        shutil.rmtree(self.folder.parent, ignore_errors=True)


def new_stack() -> Stack:
    """A stack in a fresh temporary folder (`…/.ekey`) on free ports; start it with `with`."""
    parent = Path(tempfile.mkdtemp(prefix="ekey-interop-"))
    return Stack(folder=parent / ".ekey", ports={flag: free_port() for flag in PORT_FLAGS})
