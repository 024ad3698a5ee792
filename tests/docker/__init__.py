"""The image, built and run for real: `make docker-test` (tests/docker/smoke.py)."""
