"""Operator endpoints under /admin, behind a bearer token; off when no token is set."""
