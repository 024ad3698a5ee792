"""The background worker: `python -m worker` runs RQ jobs and the outbox relay."""

import os

# Set here, before anything imports prometheus_client, which picks its mode at import.
# The worker keeps its metrics in-process (worker/metrics.py), or, as a child of the
# supervisor (WORKER_PROCESSES > 1), in files of the directory the supervisor names. An
# inherited PROMETHEUS_MULTIPROC_DIR (meant for Gunicorn) must not switch that on.
CHILD_METRICS_DIR = "WORKER_CHILD_METRICS_DIR"
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
if os.environ.get(CHILD_METRICS_DIR):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = os.environ[CHILD_METRICS_DIR]
