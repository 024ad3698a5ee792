"""Gunicorn's entry point (`wsgi_app` in gunicorn.conf.py): app built in the worker."""

from __future__ import annotations

from flask import Flask

from app.config import load_settings_or_exit
from app.factory import create_app


def build() -> Flask:
    return create_app(load_settings_or_exit())
