"""gunicorn settings for the portal (read from the working directory: `gunicorn wsgi:app`).

Threads let a worker keep connections alive and wait on the database while another request
runs; the numbers are a starting point for a 2-CPU box (bench/upsale.py measured 4 x 1 and
4 x 2 best there), raise workers with CPUs: GUNICORN_WORKERS, GUNICORN_THREADS."""
import gc
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
worker_class = "gthread"
workers = int(os.environ.get("GUNICORN_WORKERS", "4"))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
keepalive = 5


def post_worker_init(worker):
    # The app is loaded by now: keep them out of every collection, and
    # collect the young generation less often (a request allocates many short-lived objects;
    # the default threshold of 700 ran a collection several times per request).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
