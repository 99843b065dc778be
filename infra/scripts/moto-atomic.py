"""Starts moto's server with every request handled atomically, as AWS handles each API call.

Usage:
    moto-atomic.py -H HOST -p PORT

Why not `moto_server` itself: moto serves each connection on its own thread, and its DynamoDB
`PutItem`/`UpdateItem` read the current item, evaluate the condition and write the new item as
three separate Python steps with no lock between them. Under load a thread switch can fall between
the check and the write, and two concurrent conditional writes to one item then both succeed, which
DynamoDB never allows: a single-item conditional write is atomic there. Our idempotency, dedup and
lease code rests on exactly that guarantee, so its tests against moto failed now and then (two of
fifty concurrent duplicates "proceeded") for a reason that is moto's, not ours.

This launcher serves the same moto application, still on a thread per connection, but holds one
lock for the whole of each request, response body included. Every call is then atomic, as it is
against AWS. Moto is single-process Python under one interpreter lock, so this costs it little
throughput. It changes nothing else: the same backends, the same handler, the same flags.
"""

import argparse
import os
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def atomic(app):
    """Wraps a WSGI application so that one request at a time runs it, to the end of its body."""
    lock = threading.Lock()

    def serve(environ, start_response):
        with lock:
            body = app(environ, start_response)
            try:
                return [b"".join(body)]
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()

    return serve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    # moto builds some of its answers (queue URLs and the like) from this, as moto_server does.
    os.environ.setdefault("MOTO_PORT", str(args.port))
    run_simple(
        args.host,
        args.port,
        atomic(DomainDispatcherApplication(create_backend_app)),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
