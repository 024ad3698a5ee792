"""What the exports API accepts and returns."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict


class ExportCreate(BaseModel):
    """An export of every user; no options yet, and unknown ones are refused."""

    model_config = ConfigDict(extra="forbid")


class Progress(BaseModel):
    rows_done: int
    rows_total: int | None
    percent: float | None


class ExportOut(BaseModel):
    id: uuid.UUID
    status: Literal["queued", "started", "finished", "failed"]
    progress: Progress
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime
    download: str | None
    error: str | None
    warning: str | None
