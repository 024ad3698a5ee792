"""Gunicorn's entry point (`wsgi_app` in gunicorn.conf.py): app built in the worker."""

from __future__ import annotations

from flask import Flask

from app.factory import create_app
from app.foundation.config import load_settings_or_exit


def build() -> Flask:
    return create_app(load_settings_or_exit())
