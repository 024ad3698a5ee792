"""Every feature's HTTP routes: the one list create_app registers.

Adding a feature means adding its blueprint here (and its job kinds to job_kinds.py).
"""

from __future__ import annotations

from flask import Blueprint

from app.features.admin.routes import bp as admin_bp
from app.features.exports.routes import bp as exports_bp
from app.features.health.routes import bp as health_bp
from app.features.openapi.routes import bp as openapi_bp
from app.features.users.routes import bp as users_bp

FEATURE_BLUEPRINTS: tuple[Blueprint, ...] = (health_bp, users_bp, exports_bp, admin_bp, openapi_bp)
