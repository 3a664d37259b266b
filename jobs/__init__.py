"""RQ entry points. Jobs are plain functions on ids that run inside an app context and call
portal code; nothing here decides anything.

``app()`` creates the Flask app once per process (the worker creates it at start; a forking
``rq worker`` creates it in each work horse, which then owns its own database connections).
"""
from __future__ import annotations

from functools import wraps

from flask import Flask, has_app_context

_app: Flask | None = None


def app() -> Flask:
    global _app
    if _app is None:
        from portal import create_app

        _app = create_app()
    return _app


def report(**meta) -> None:
    """Tell the job's progress row how it goes: ``progress=`` while it runs, ``result=`` (a
    line) when done (portal/admin/jobs.py). Outside a job (a direct call): nothing."""
    from rq import get_current_job

    job = get_current_job()
    if job is not None:
        job.meta.update(meta)
        job.save_meta()


def in_app_context(func):
    """Run the job in a fresh app context (its own database session), or in the caller's."""
    @wraps(func)
    def wrapper(*args, **kwargs):
        if has_app_context():
            return func(*args, **kwargs)
        with app().app_context():
            return func(*args, **kwargs)
    return wrapper
