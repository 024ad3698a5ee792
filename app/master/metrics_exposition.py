"""The Gunicorn master's side of multiprocess metrics: one /metrics on its own port.

Runs only in the master (gunicorn.conf.py hooks). It merges the workers' metric files,
folds the files of workers that have exited into one archive per type (prometheus_client
leaves them behind, and thousands of them make every scrape slow: client_python #367),
and adds what multiprocess mode cannot: each worker's memory and CPU, read from /proc.
"""

from __future__ import annotations

import glob
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector
from sqlalchemy import Engine, create_engine, pool, text

logger = logging.getLogger(__name__)
# Counters and histograms only grow: a dead worker's totals can be added into one file.
_ADDITIVE_TYPES = ("counter", "histogram")
ARCHIVE = "archive"
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def reset_directory(path: Path) -> None:
    """At master start, delete what a previous run left: its values must not leak in.

    The master's own files stay: with preload_app it has already written some."""
    own = f"_{os.getpid()}.db"
    for leftover in path.glob("*.db"):
        if not leftover.name.endswith(own):
            leftover.unlink()


class MetricFiles:
    """The multiprocess directory, guarded so that a scrape never sees a half-folded file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()

    @classmethod
    def of(cls, path: Path) -> MetricFiles:
        """The one instance for this directory. SIGHUP makes Gunicorn run its config file
        again: the child_exit hook then still shares its lock with the scrape collector
        started by the first run."""
        return _metric_files.setdefault(path.resolve(), cls(path))

    def retire(self, pid: int) -> None:
        """A worker exited: fold its counters and histograms into the archive files,
        drop its gauges (live ones are gone with it; the others are re-exported by the
        living workers). Totals stay exact and the file count stays bounded."""
        with self.lock:
            mark_process_dead(pid, str(self.path))
            for kind in _ADDITIVE_TYPES:
                dead = self.path / f"{kind}_{pid}.db"
                if dead.exists():
                    _add_into(self.path / f"{kind}_{ARCHIVE}.db", dead)
                    dead.unlink()
            for gauge in glob.glob(str(self.path / f"gauge_*_{pid}.db")):
                os.remove(gauge)

    def file_count(self) -> int:
        return len(list(self.path.glob("*.db")))


_metric_files: dict[Path, MetricFiles] = {}


def _add_into(archive_path: Path, dead_path: Path) -> None:
    archive = MmapedDict(str(archive_path))
    try:
        for key, value, timestamp, _pos in MmapedDict.read_all_values_from_file(str(dead_path)):
            current, _ = archive.read_value(key)
            archive.write_value(key, current + value, timestamp)
    finally:
        archive.close()


class LockedMultiProcessCollector(Collector):
    def __init__(self, files: MetricFiles) -> None:
        self._files = files
        self._inner = MultiProcessCollector(None, str(files.path))

    def collect(self) -> Iterable[Metric]:
        with self._files.lock:
            return list(self._inner.collect())


class WorkerProcessCollector(Collector):
    """Memory and CPU of the master and of the workers, by role, not by pid: a pid label
    would add series at every worker recycle (GUNICORN_MAX_REQUESTS) without bound.

    Workers' memory is their sum and the largest one (what recycling is for); their CPU
    counter adds the last reading of each worker that has exited, so it never goes back."""

    def __init__(self, arbiter: Any) -> None:
        self._arbiter = arbiter
        self._last_cpu: dict[int, float] = {}
        self._exited_cpu = 0.0

    def collect(self) -> Iterator[Metric]:
        rss = GaugeMetricFamily(
            "gunicorn_process_resident_memory_bytes",
            "Resident memory: the master's, and the live workers' together.",
            labels=["role"],
        )
        cpu = CounterMetricFamily(
            "gunicorn_process_cpu_seconds",
            "User and system CPU time of the master, and of every worker so far.",
            labels=["role"],
        )
        largest = GaugeMetricFamily(
            "gunicorn_worker_max_resident_memory_bytes", "Resident memory of the largest worker."
        )
        master = _proc_stats(os.getpid())
        if master is not None:
            rss.add_metric(["master"], master[0])
            cpu.add_metric(["master"], master[1])
        workers = {pid: _proc_stats(pid) for pid in list(self._arbiter.WORKERS)}
        live = {pid: stats for pid, stats in workers.items() if stats is not None}
        for pid in set(self._last_cpu) - set(live):
            self._exited_cpu += self._last_cpu.pop(pid)
        self._last_cpu.update({pid: stats[1] for pid, stats in live.items()})
        rss.add_metric(["worker"], sum(stats[0] for stats in live.values()))
        cpu.add_metric(["worker"], self._exited_cpu + sum(self._last_cpu.values()))
        largest.add_metric([], max((stats[0] for stats in live.values()), default=0))
        count = GaugeMetricFamily("gunicorn_workers", "Live Gunicorn workers.")
        count.add_metric([], len(self._arbiter.WORKERS))
        yield from (rss, largest, cpu, count)


def _proc_stats(pid: int) -> tuple[float, float] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None
    fields = stat.rpartition(")")[2].split()
    cpu_seconds = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return resident_pages * _PAGE_SIZE, cpu_seconds


class OutboxCollector(Collector):
    """Jobs waiting in the outbox: how many, and how long the oldest has waited.

    One short query per scrape, on a connection opened for it (NullPool: nothing
    lingers in the master, which forks workers)."""

    def __init__(self, database_url: str, timeout_seconds: int) -> None:
        self._engine: Engine = create_engine(
            database_url,
            poolclass=pool.NullPool,
            hide_parameters=True,
            connect_args={
                "connect_timeout": timeout_seconds,
                "options": f"-c statement_timeout={timeout_seconds * 1000}",
            },
        )

    def collect(self) -> Iterator[Metric]:
        try:
            with self._engine.connect() as connection:
                backlog, oldest, incomplete, oldest_incomplete = connection.execute(_OUTBOX).one()
        except Exception as exc:
            logger.warning("outbox metrics unavailable", extra={"error": type(exc).__name__})
            return
        yield GaugeMetricFamily("outbox_backlog", "Outbox jobs not yet enqueued.", value=backlog)
        yield GaugeMetricFamily(
            "outbox_oldest_pending_age_seconds",
            "Age of the oldest outbox job not yet enqueued.",
            value=float(oldest),
        )
        # Whatever Redis says: a job enqueued and then lost still counts here.
        yield GaugeMetricFamily(
            "outbox_incomplete", "Outbox jobs neither completed nor failed.", value=incomplete
        )
        yield GaugeMetricFamily(
            "outbox_oldest_incomplete_age_seconds",
            "Age of the oldest outbox job neither completed nor failed, dispatched or not.",
            value=float(oldest_incomplete),
        )


# One scan of the pending rows' partial index (ix_outbox_pending).
_OUTBOX = text(
    "SELECT count(*) FILTER (WHERE dispatched_at IS NULL),"
    " coalesce(extract(epoch FROM now() - min(created_at)"
    " FILTER (WHERE dispatched_at IS NULL)), 0),"
    " count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)"
    " FROM outbox WHERE completed_at IS NULL AND failed_at IS NULL"
)


def serve_metrics(
    *, files: MetricFiles, arbiter: Any, database_url: str, host: str, port: int
) -> None:
    """Start the master's /metrics HTTP server (a daemon thread of prometheus_client)."""
    registry = CollectorRegistry()
    registry.register(LockedMultiProcessCollector(files))
    registry.register(WorkerProcessCollector(arbiter))
    registry.register(OutboxCollector(database_url, timeout_seconds=2))
    start_http_server(port, addr=host, registry=registry)
    logger.info("metrics served", extra={"port": port})
