"""`make docker-test`: the image built and run for real, where a Docker engine answers.

Against this machine's PostgreSQL and Redis (a scratch database and Redis DB number,
through `--network host`), it checks that the image builds on a base made here (no
registry needed), runs as a non-root user on a read-only root filesystem, migrates,
answers /healthz, runs a job in the worker, drains and exits 0 on `docker stop`; and
prints the image size.

Where no engine answers and none can be started (no dockerd, not root, or it does not
come up), it says why and exits 0: a machine without an engine is not a broken image.

    DOCKER_TEST_BASE_IMAGE    use this base instead of making one (e.g. python:3.11-slim
                              where a registry is reachable)
    DOCKER_TEST_DATABASE_URL  an administrative URL (default postgres@127.0.0.1:5432, trust)
    DOCKER_TEST_REDIS_URL     default redis://127.0.0.1:6379/14 (flushed before and after)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from devtools.issuer import AUDIENCE, DevIssuer
from devtools.processes import PROJECT_ROOT, TOKEN_VARIABLE, free_port, http_call

IMAGE = "users-service:docker-test"
LOCAL_BASE = "users-service-base:bookworm"
DEBIAN_MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
ADMIN_DATABASE_URL = os.environ.get(
    "DOCKER_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("DOCKER_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
DRAIN_SECONDS = 2
# As in docker-compose.yml and the Kubernetes manifests: drain + graceful timeout + margin.
WEB_STOP_TIMEOUT = 35
WORKER_STOP_TIMEOUT = 150


class Skip(Exception):
    """No engine here: nothing to test, and not a failure."""


class Failure(Exception):
    """The image or the way it runs is wrong."""


def docker(*args: str, timeout: float = 120, check: bool = True) -> str:
    """A docker command's output; a non-zero exit is a Failure unless `check` is off."""
    done = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise Failure(f"docker {' '.join(args[:3])} … exited {done.returncode}:\n{done.stderr}")
    return done.stdout.strip()


def image_exists(image: str) -> bool:
    done = subprocess.run(
        ["docker", "image", "inspect", image], capture_output=True, timeout=30, check=False
    )
    return done.returncode == 0


def engine_answers() -> bool:
    try:
        return (
            subprocess.run(
                ["docker", "info"], capture_output=True, timeout=20, check=False
            ).returncode
            == 0
        )
    except subprocess.TimeoutExpired:
        return False


@contextmanager
def engine(workdir: Path) -> Iterator[bool]:
    """An engine that answers: the one running (False), or a dockerd started and stopped
    here (True)."""
    if shutil.which("docker") is None:
        raise Skip("no docker CLI on PATH")
    if engine_answers():
        yield False
        return
    if shutil.which("dockerd") is None:
        raise Skip("`docker info` fails and dockerd is not installed")
    if os.geteuid() != 0:
        raise Skip("`docker info` fails and dockerd can only be started by root")
    log_path = workdir / "dockerd.log"
    with log_path.open("wb") as log:
        # Every container here uses the host's network, so the daemon needs no bridge
        # and no iptables rules, which sandboxes often forbid.
        daemon = subprocess.Popen(
            ["dockerd", "--iptables=false", "--bridge=none"], stdout=log, stderr=log
        )
    try:
        deadline = time.monotonic() + 30
        while not engine_answers():
            if daemon.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace").splitlines()[-5:]
                why = "within 30 s" if daemon.poll() is None else f"(it exited {daemon.poll()})"
                raise Skip(f"dockerd did not come up {why}:\n  " + "\n  ".join(tail))
            time.sleep(1)
        print("started dockerd for this run")
        yield True
    finally:
        daemon.terminate()
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def base_image(workdir: Path) -> str:
    """The base to build on: given, made earlier, or a Debian bookworm made now."""
    given = os.environ.get("DOCKER_TEST_BASE_IMAGE")
    if given:
        return given
    if image_exists(LOCAL_BASE):
        return LOCAL_BASE
    if os.geteuid() != 0:
        raise Failure(f"making {LOCAL_BASE} needs root (or set DOCKER_TEST_BASE_IMAGE)")
    if shutil.which("debootstrap") is None:
        subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "debootstrap"], check=True, timeout=600)
    rootfs = workdir / "rootfs"
    print(f"making {LOCAL_BASE} with debootstrap (a few minutes, once)")
    subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            # Debian's Python with venv (the builder's uv bootstrap), tini (PID 1),
            # passwd (useradd), CA certificates.
            "--include=python3,python3-venv,ca-certificates,tini,passwd",
            "bookworm",
            str(rootfs),
            DEBIAN_MIRROR,
        ],
        check=True,
        timeout=1800,
    )
    # The builder reaches PyPI with the bundle the base carries (CA_BUNDLE build arg):
    # here, the host's, which trusts whatever proxy stands between this machine and PyPI.
    shutil.copyfile(HOST_CA_BUNDLE, rootfs / "etc/ssl/certs/ca-certificates.crt")
    for cache in ("var/lib/apt/lists", "var/cache/apt/archives"):
        shutil.rmtree(rootfs / cache, ignore_errors=True)
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    # An imported image has no environment at all: without PATH, `ENV PATH=/opt/venv/bin:$PATH`
    # in the Dockerfile would leave tini and the shell unreachable.
    subprocess.run(
        [
            "docker",
            "import",
            "--change",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--change",
            "ENV LANG=C.UTF-8",
            "-",
            LOCAL_BASE,
        ],
        stdin=tar.stdout,
        check=True,
        timeout=600,
    )
    tar.wait()
    shutil.rmtree(rootfs, ignore_errors=True)
    return LOCAL_BASE


def build(base: str) -> float:
    """Build the image (output streamed), return the seconds it took."""
    started = time.monotonic()
    subprocess.run(
        [
            "docker",
            "build",
            # The build reaches PyPI the way this host does.
            "--network",
            "host",
            "--build-arg",
            f"BASE_IMAGE={base}",
            "--build-arg",
            f"UV_VERSION={os.environ.get('UV_VERSION', '0.13.9')}",
            "--build-arg",
            f"VERSION={os.environ.get('VERSION', 'docker-test')}",
            "--build-arg",
            f"GIT_REVISION={os.environ.get('GIT_REVISION', 'unknown')}",
            "--tag",
            IMAGE,
            str(PROJECT_ROOT),
        ],
        check=True,
        timeout=1800,
    )
    return time.monotonic() - started


def in_image(code: str) -> None:
    """Run Python inside the image (its psycopg and redis), on the host's network."""
    docker("run", "--rm", "--network", "host", IMAGE, "python", "-c", code)


def scratch_url(database: str) -> str:
    return urlunsplit(urlsplit(ADMIN_DATABASE_URL)._replace(path=f"/{database}"))


def wait_for(what: str, container: str, probe: Callable[[], bool], timeout: float = 90) -> None:
    """Poll `probe` until it holds, failing early if the container exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if docker("inspect", "-f", "{{.State.Running}}", container) != "true":
            raise Failure(f"{container} exited while waiting for {what}:\n{logs(container)}")
        with suppress(OSError):
            if probe():
                return
        time.sleep(0.5)
    raise Failure(f"timed out waiting for {what}:\n{logs(container)}")


def logs(container: str) -> str:
    done = subprocess.run(
        ["docker", "logs", "--tail", "40", container],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.stdout + done.stderr


def run_service(name: str, env: dict[str, str], *command: str) -> None:
    flags = [f"--env={key}={value}" for key, value in env.items()]
    # The same constraints as in Compose and Kubernetes: read-only root, writable /tmp.
    docker(
        *("run", "--detach", "--name", name, "--network", "host"),
        *("--read-only", "--tmpfs", "/tmp:size=64m,mode=1777"),
        *flags,
        IMAGE,
        *command,
    )


def stop(name: str, timeout: int) -> tuple[int, float]:
    """`docker stop`, then the container's exit code and the seconds the stop took."""
    started = time.monotonic()
    docker("stop", "--time", str(timeout), name, timeout=timeout + 30)
    return int(docker("inspect", "-f", "{{.State.ExitCode}}", name)), time.monotonic() - started


def check_image(report: dict[str, str]) -> None:
    user = docker("image", "inspect", "-f", "{{.Config.User}}", IMAGE)
    uid = docker("run", "--rm", "--read-only", IMAGE, "id", "-u")
    if uid == "0" or not user.split(":")[0].isdigit():
        raise Failure(f"the image runs as {user!r} (uid {uid}): it must be a numeric non-root user")
    report["user"] = f"{user} (id -u: {uid})"
    size = int(docker("image", "inspect", "-f", "{{.Size}}", IMAGE))
    report["image size"] = f"{size / 1_000_000:.0f} MB"


def check_services(report: dict[str, str], database: str) -> None:
    port, metrics_port, worker_metrics_port = free_port(), free_port(), free_port()
    # The containers share the host's network: they fetch this issuer's keys, and every
    # call below carries its token, as production's clients carry their issuer's.
    issuer = DevIssuer(Path(tempfile.mkdtemp(prefix="docker-test-issuer-")) / "key.pem").start()
    os.environ[TOKEN_VARIABLE] = issuer.token()
    env = {
        "APP_ENV": "development",  # console mailer: no SMTP server needed here
        "DATABASE_URL": scratch_url(database),
        "REDIS_URL": REDIS_URL,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "METRICS_PORT": str(metrics_port),
        "WORKER_METRICS_PORT": str(worker_metrics_port),
        "WEB_CONCURRENCY": "2",
        "SHUTDOWN_DRAIN_SECONDS": str(DRAIN_SECONDS),
        "AUTH_ISSUER": issuer.url,
        "AUTH_AUDIENCE": AUDIENCE,
    }
    flags = [f"--env={key}={value}" for key, value in env.items()]
    docker(
        *("run", "--rm", "--network", "host", "--read-only", "--tmpfs", "/tmp"),
        *flags,
        *(IMAGE, "alembic", "upgrade", "head"),
    )
    report["migrations"] = "alembic upgrade head: ok"

    web, jobs = f"users-api-docker-test-{os.getpid()}", f"users-worker-docker-test-{os.getpid()}"
    try:
        run_service(web, env)
        wait_for("/healthz", web, lambda: http_call("GET", port, "/healthz")[0] == 200)
        wait_for("/startupz", web, lambda: http_call("GET", port, "/startupz")[0] == 200)
        report["/healthz"] = "200 (read-only root, /tmp on tmpfs)"

        run_service(jobs, env, "python", "-m", "worker")
        email = f"docker-test-{os.getpid()}@example.com"
        status, _, _ = http_call("POST", port, "/api/v1/users", {"email": email, "name": "D"})
        if status != 201:
            raise Failure(f"POST /api/v1/users answered {status}")
        _, headers, _ = http_call("POST", port, "/api/v1/exports")
        location = headers["Location"]

        def export_finished() -> bool:
            body = http_call("GET", port, location)[2]
            if body["status"] == "failed":
                raise Failure(f"the export job failed: {body}\n{logs(jobs)}")
            return bool(body["status"] == "finished")

        wait_for("the worker to finish an export job", jobs, export_finished, timeout=120)
        csv = http_call("GET", port, f"{location}/download")[2]
        if email not in str(csv):
            raise Failure("the export's CSV does not list the user just created")
        docker("exec", jobs, "python", "-m", "worker", "check")
        report["worker"] = "ran an export job; `python -m worker check` ok"

        report["docker stop (web)"] = stop_web_gracefully(web, port)
        code, seconds = stop(jobs, WORKER_STOP_TIMEOUT)
        if code != 0:
            raise Failure(f"the worker exited {code} on docker stop:\n{logs(jobs)}")
        report["docker stop (worker)"] = f"exit 0 after {seconds:.1f} s (warm shutdown)"
    finally:
        docker("rm", "--force", web, jobs, check=False)


def stop_web_gracefully(web: str, port: int) -> str:
    """SIGTERM while watching: /readyz must turn 503 while /healthz still answers."""
    stopping = subprocess.Popen(
        ["docker", "stop", "--time", str(WEB_STOP_TIMEOUT), web], stdout=subprocess.DEVNULL
    )
    started, drained = time.monotonic(), False
    while stopping.poll() is None and not drained:
        with suppress(OSError):
            drained = (
                http_call("GET", port, "/readyz", timeout=2)[0] == 503
                and http_call("GET", port, "/healthz", timeout=2)[0] == 200
            )
        time.sleep(0.1)
    stopping.wait(WEB_STOP_TIMEOUT + 30)
    seconds = time.monotonic() - started
    code = int(docker("inspect", "-f", "{{.State.ExitCode}}", web))
    output = logs(web)
    if not drained or "draining before shutdown" not in output:
        raise Failure(f"no drain seen (/readyz never 503 while serving):\n{output}")
    if code != 0 or seconds < DRAIN_SECONDS:
        raise Failure(f"docker stop: exit {code} after {seconds:.1f} s:\n{output}")
    return f"exit 0 after {seconds:.1f} s (/readyz 503 while serving, then graceful stop)"


def run() -> dict[str, str]:
    report: dict[str, str] = {}
    with (
        tempfile.TemporaryDirectory(prefix="docker-test-") as scratch,
        engine(Path(scratch)) as started_here,
    ):
        base = base_image(Path(scratch))
        runs = subprocess.run(
            ["docker", "run", "--rm", "--network", "host", base, "true"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if runs.returncode != 0 and started_here:
            # A daemon that starts but cannot run a container (no cgroups or overlay in a
            # sandbox) is no engine either.
            raise Skip(f"the dockerd started here cannot run containers: {runs.stderr}")
        if runs.returncode != 0:
            raise Failure(f"the engine cannot run a container from {base}: {runs.stderr}")
        report["build"] = f"{build(base):.0f} s on {base}"
        check_image(report)
        database = f"users_docker_test_{os.getpid()}"
        admin = urlsplit(ADMIN_DATABASE_URL)._replace(scheme="postgresql").geturl()
        connect = f"import psycopg; c = psycopg.connect({admin!r}, autocommit=True)"
        flush = f"import redis; redis.Redis.from_url({REDIS_URL!r}).flushdb()"
        in_image(f"{connect}; c.execute('CREATE DATABASE {database}')")
        in_image(flush)
        try:
            check_services(report, database)
        finally:
            in_image(f"{connect}; c.execute('DROP DATABASE IF EXISTS {database} WITH (FORCE)')")
            in_image(flush)
    return report


def main() -> int:
    try:
        report = run()
    except Skip as reason:
        print(f"docker-test skipped: {reason}")
        return 0
    except (Failure, subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        print(f"docker-test FAILED: {error}", file=sys.stderr)
        return 1
    width = max(map(len, report))
    print("docker-test passed:")
    for check, result in report.items():
        print(f"  {check:<{width}}  {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
