"""The service with its bearer-token check removed, and nothing else changed: the other
side of the "authentication on / off" ratio in make bench. Never served anywhere else."""

from __future__ import annotations

from app.factory import create_app
from app.foundation.config import load_settings_or_exit

app = create_app(load_settings_or_exit())
_checks = app.before_request_funcs[None]
_bearer = [check for check in _checks if check.__qualname__.startswith("init_bearer_auth.")]
assert len(_bearer) == 1, "the bearer check moved: update the benchmark"
_checks.remove(_bearer[0])
