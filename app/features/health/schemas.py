"""What the probes answer: Kubernetes reads only the status code; people read the rest."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Alive(BaseModel):
    status: Literal["ok"]


class Started(BaseModel):
    status: Literal["started", "starting"]


class Check(BaseModel):
    status: Literal["ok", "failing"]
    critical: bool = Field(description="whether a failure makes the instance unready")
    duration_ms: float
    error: str | None = Field(description="the failure's class, never its message")


class Readiness(BaseModel):
    status: Literal["ready", "degraded", "unready", "shutting_down"]
    checks: dict[str, Check]
