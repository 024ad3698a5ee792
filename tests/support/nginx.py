"""Debian's nginx running the shipped template (deploy/nginx/default.conf.template), as
the official image would: rendered by envsubst from its two variables, included in the
http {} context, in a prefix directory of the test's own."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from devtools.processes import PROJECT_ROOT, kill_tree

TEMPLATE = PROJECT_ROOT / "deploy/nginx/default.conf.template"
VARIABLES = ("NGINX_LISTEN_PORT", "UPSTREAM")
# envsubst's syntax: $NAME or ${NAME}. nginx's own variables are lower case.
REFERENCE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


def nginx_binary() -> str | None:
    """nginx, installed from Debian when missing and we are root (CI is); else None."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "check": False}
        subprocess.run(["apt-get", "update", "-qq"], timeout=300, **quiet)  # type: ignore[call-overload]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(  # type: ignore[call-overload]
            ["apt-get", "install", "-y", "-qq", "nginx"], timeout=600, env=env, **quiet
        )
        found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    return found


def render(listen: str, upstream: str) -> str:
    """The template with its two variables substituted and nothing else, as the image's
    envsubst does (it substitutes only the variables its environment defines)."""
    values = dict(zip(VARIABLES, (listen, upstream), strict=True))
    envsubst = shutil.which("envsubst")
    if envsubst is not None:
        shell_format = " ".join(f"${{{name}}}" for name in VARIABLES)
        return subprocess.run(
            [envsubst, shell_format],
            input=TEMPLATE.read_text(),
            env={**os.environ, **values},
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def substitute(match: re.Match[str]) -> str:
        return values.get(match.group(1), match.group(0))

    return REFERENCE.sub(substitute, TEMPLATE.read_text())


def main_config(prefix: Path, server_file: Path) -> str:
    """A minimal nginx.conf around the rendered file: everything inside `prefix`."""
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must reach the temp dirs
    temp_paths = "".join(
        f"    {kind}_temp_path {prefix / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}worker_processes 1;\n"
        f"error_log {prefix / 'error.log'} info;\n"
        f"pid {prefix / 'nginx.pid'};\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        f"    access_log {prefix / 'access.log'};\n"
        f"{temp_paths}"
        f"    include {server_file};\n"
        "}\n"
    )


def write_config(prefix: Path, listen: str, upstream: str) -> Path:
    prefix.mkdir(parents=True, exist_ok=True)
    server_file = prefix / "default.conf"
    server_file.write_text(render(listen, upstream))
    config = prefix / "nginx.conf"
    config.write_text(main_config(prefix, server_file))
    return config


def command(binary: str, prefix: Path, config: Path, *extra: str) -> list[str]:
    # -e: the startup error log inside the prefix, not the compiled-in /var/log/nginx.
    return [binary, "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", str(config), *extra]


class Nginx:
    """nginx in the foreground, proxying 127.0.0.1:`port` to `upstream`."""

    def __init__(self, binary: str, prefix: Path, port: int, upstream: str) -> None:
        self.prefix, self.port = prefix, port
        config = write_config(prefix, f"127.0.0.1:{port}", upstream)
        self._log = (prefix / "stderr.log").open("wb")
        self.process = subprocess.Popen(
            command(binary, prefix, config, "-g", "daemon off;"),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_until_listening(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"nginx exited {self.process.returncode}: {self.errors()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"nginx never listened: {self.errors()}")

    def errors(self) -> str:
        log = self.prefix / "error.log"
        return log.read_text(errors="replace") if log.exists() else ""

    def stop(self) -> None:
        """SIGQUIT (graceful), then SIGKILL of the master and its worker if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                kill_tree(self.process.pid)
                self.process.wait()
        self._log.close()

    def __enter__(self) -> Nginx:
        try:
            self.wait_until_listening()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
