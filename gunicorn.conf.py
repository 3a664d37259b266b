"""gunicorn settings for the portal (read from the working directory: `gunicorn wsgi:app`).

Measured with bench/upsale.py on a 2-CPU box (bench/README.md): sync workers, one request
at a time each (gthread with one thread cost ~10 % more CPU per call for the same work; a
second thread 10-15 % more, the GIL), CPUs + 1 of them (3 on 2 CPUs served 179-195 req/s of
200 offered, 4 served 146-169 and 6 served 170: more processes than that only contend for the
CPUs), and no keep-alive: a kept-alive connection stays with the worker that accepted it, so a
busy client piles its requests onto one worker while others idle. Put a proxy in front (it
buffers slow clients and keeps browsers' connections alive). GUNICORN_WORKERS and
GUNICORN_THREADS override; threads > 1 switches to the gthread worker."""
import gc
import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", str((os.cpu_count() or 1) + 1)))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
worker_class = "gthread" if threads > 1 else "sync"
keepalive = 0  # Connection: close after every response (see above)
# The app is imported once, in the master, and workers fork from it: a worker (re)starts in
# milliseconds instead of importing the app again (a second or more of CPU each, taken from
# the workers already serving).
preload_app = True


def post_fork(server, worker):
    # No connection may be shared across processes: drop any the master's pool holds (creating
    # the app opens none today; this keeps it so).
    app = server.app.wsgi()
    if hasattr(app, "app_context"):  # the portal (tests serve a bare WSGI function with this file too)
        from portal.extensions import db

        with app.app_context():
            db.engine.dispose(close=False)


def post_worker_init(worker):
    # The app is loaded by now: keep its objects out of every collection, and
    # collect the young generation less often (a request allocates many short-lived objects;
    # the default threshold of 700 ran a collection several times per request).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    from gunicorn.workers.sync import SyncWorker

    if type(worker) is SyncWorker:  # (gthread closes in another thread than post_request runs in)
        _linger_only_when_needed()


# Closing a connection, gunicorn's sync worker sends its FIN and then waits for the client's
# (util.close_graceful, up to 2 s): were request bytes left unread in the kernel's buffer, a
# plain close would send a RST that can cut off the response the client has not read yet. A
# worker waiting so serves no one meanwhile, and on a busy machine the client's close comes
# late. As nginx's `lingering_close on`: wait only when the client may still be sending, i.e.
# the request's body was not read to its end (a refused caller's, a chunked one) or bytes are
# waiting; otherwise close at once (a FIN, nothing unread: no RST). The sync worker only (one
# request at a time, so the flag below is this connection's), and plain TCP only (gunicorn's
# own TLS socket takes no recv flags; it keeps gunicorn's close).
_body_read = [False]


def post_request(worker, req, environ, resp):
    from gunicorn.http.body import LengthReader

    reader = getattr(getattr(req, "body", None), "reader", None)
    _body_read[0] = isinstance(reader, LengthReader) and reader.length == 0


def _linger_only_when_needed():
    import socket

    from gunicorn import util

    graceful = util.close_graceful

    def close(sock, timeout=2.0, max_drain=65536):
        read, _body_read[0] = _body_read[0], False
        if read and type(sock) is socket.socket:
            try:
                waiting = sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                waiting = b""  # nothing unread
            except (OSError, ValueError):
                waiting = None  # let gunicorn's own close deal with it
            if waiting == b"":
                try:
                    sock.close()
                except OSError:
                    pass
                return
        graceful(sock, timeout, max_drain)

    util.close_graceful = close
