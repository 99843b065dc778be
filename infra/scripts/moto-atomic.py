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
throughput.

One more change, to speed and not to behaviour: moto's `TransactWriteItems` deep-copies every table
a transaction touches before it starts, so that it can put the copy back if an operation fails.
That costs time in proportion to the table, not to the transaction (most of moto's CPU in our
DynamoDB chaos suite, whose table grows to thousands of items). `snapshot_only_touched_items`
makes it copy only the items the transaction names, and put those back on failure: the same
all-or-nothing result, as DynamoDB gives, at the cost of the transaction. The store contract
suite's batch tests (a failed batch leaves created and replaced records as they were) run against
it. moto is pinned in tests/requirements.txt; an upgrade must re-read `transact_write_items`.

And one to its routing: to find which service a request is for, moto lists its own package
directory (174 service modules in the pinned version, each checked with `isdir`) twice per
request. The directory does not change while the server runs, so `list_modules_once` lists it
once.
"""

import argparse
import copy
import os
import threading
import types

import moto.backends as moto_backends
import moto.dynamodb.models as dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.table import Table
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


def list_modules_once() -> None:
    """Makes moto's list of its own service modules a constant (see above)."""
    modules = tuple(moto_backends.list_of_moto_modules())
    moto_backends.list_of_moto_modules = lambda: modules


def snapshot_only_touched_items() -> None:
    """Makes moto's TransactWriteItems save and restore only the items it names (see above)."""
    in_transaction = threading.local()

    def deepcopy(value, memo=None):
        # Inside a transaction, moto's whole-table backup becomes the table itself: restoring it
        # is then a no-op, and the items saved below are put back instead.
        if getattr(in_transaction, "on", False) and isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)

    dynamodb_models.copy = types.SimpleNamespace(deepcopy=deepcopy, copy=copy.copy)

    def slot(table, op_type, op):
        attrs = op["Item"] if op_type == "Put" else op["Key"]
        hash_key = DynamoType(attrs[table.hash_key_attr])
        range_key = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr else None
        return hash_key, range_key

    def read(table, hash_key, range_key):
        if range_key is None:
            return table.items.get(hash_key)
        return table.items.get(hash_key, {}).get(range_key)

    def restore(table, hash_key, range_key, item):
        if range_key is None:
            if item is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = item
        elif item is None:
            table.items.get(hash_key, {}).pop(range_key, None)
        else:
            table.items[hash_key][range_key] = item

    original = DynamoDBBackend.transact_write_items

    def transact_write_items(self, transact_items):
        saved = []
        for entry in transact_items:
            try:
                ((op_type, op),) = entry.items()
                table = self.tables[op["TableName"]]
                hash_key, range_key = slot(table, op_type, op)
            except (KeyError, TypeError, ValueError):
                # An operation moto cannot place fails as a whole, so it writes nothing.
                continue
            saved.append((table, hash_key, range_key, copy.deepcopy(read(table, hash_key, range_key))))
        in_transaction.on = True
        try:
            return original(self, transact_items)
        except BaseException:
            # Oldest first wins: an item named twice gets its state from before the transaction.
            for table, hash_key, range_key, item in reversed(saved):
                restore(table, hash_key, range_key, item)
            raise
        finally:
            in_transaction.on = False

    DynamoDBBackend.transact_write_items = transact_write_items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    # moto builds some of its answers (queue URLs and the like) from this, as moto_server does.
    os.environ.setdefault("MOTO_PORT", str(args.port))
    snapshot_only_touched_items()
    list_modules_once()
    run_simple(
        args.host,
        args.port,
        atomic(DomainDispatcherApplication(create_backend_app)),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
