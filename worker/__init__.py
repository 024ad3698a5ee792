"""The background worker: `python -m worker` runs RQ jobs and the outbox relay."""
