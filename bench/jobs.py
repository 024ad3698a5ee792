"""A job that does nothing: measures the queue and the worker model, not the work."""


def noop() -> None:
    return None
