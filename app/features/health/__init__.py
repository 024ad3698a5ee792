"""Kubernetes probes: liveness, readiness and startup."""
