"""The admin audit trail: every admin action is logged with who did it and from where.
Who may act is decided by the `admin` scope (app/web/bearer_auth.py)."""

from __future__ import annotations

import logging

from flask import request

from app.web.bearer_auth import current_principal

logger = logging.getLogger("app.features.admin")


def audit_admin_action() -> None:
    principal = current_principal()
    logger.info(
        "admin action",
        extra={
            "actor": principal.subject if principal else None,
            "remote_addr": request.remote_addr,
            "action": request.endpoint,
        },
    )
