"""The users API service. The app factory is `app.factory.create_app`.

Importing this package imports nothing else: gunicorn.conf.py must set up the
environment (PROMETHEUS_MULTIPROC_DIR) before any module that uses prometheus_client.
"""
