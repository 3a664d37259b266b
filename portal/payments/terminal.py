"""A payment terminal simulator: pays into the portal the way a payment agent's terminal does,
over the provider protocol (``check``, then ``pay`` with the same ``txn_id``), and prints the
XML answers.

    .venv/bin/python -m portal.payments.terminal ACCOUNT SUM [--url http://127.0.0.1:5000]
        [--agent demo-terminal] [--secret terminal12345] [--txn-id N] [--repeat]

The defaults are the demo agent of ``flask demo load`` (portal/demo.py), which sends account
logins: ``python -m portal.payments.terminal sidorova 600`` after ``make run`` pays the demo's
balance-blocked subscriber and unblocks her. ``--repeat`` sends the pay twice (the second answer
carries the same prv_txn and moves no money). Only the standard library: it is a client.
"""
from __future__ import annotations

import argparse
import base64
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from datetime import datetime

RESULTS = {"0": "OK", "1": "temporary error", "4": "wrong account format", "5": "account not found",
           "7": "payment forbidden", "241": "sum too small", "242": "sum too large", "300": "other error"}


def send(url: str, agent: str, secret: str | None, params: dict) -> dict:
    """One call; the answer's elements (tag -> text), with the HTTP status as ``http``."""
    request = urllib.request.Request(f"{url.rstrip('/')}/pay/provider/{agent}?{urllib.parse.urlencode(params)}")
    if secret:
        token = base64.b64encode(f"{agent}:{secret}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as e:  # refusals (401, 403, 429) carry the protocol's XML too
        status, body = e.code, e.read()
    answer = {child.tag: child.text or "" for child in ET.fromstring(body)}
    answer["http"] = str(status)
    return answer


def show(command: str, answer: dict) -> None:
    result = answer.get("result", "?")
    print(f"{command:5s} HTTP {answer['http']} result {result} ({RESULTS.get(result, '?')})"
          + (f" prv_txn {answer['prv_txn']}" if answer.get("prv_txn") else "")
          + (f" sum {answer['sum']}" if answer.get("sum") else "")
          + (f": {answer['comment']}" if answer.get("comment") else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("account", help="what the agent sends: an account login or a contract number")
    parser.add_argument("sum", help='the sum as the protocol sends it, e.g. "600" or "600.50"')
    parser.add_argument("--url", default="http://127.0.0.1:5000", help="the portal (make run prints its URL)")
    parser.add_argument("--agent", default="demo-terminal", help="the agent's name in the URL")
    parser.add_argument("--secret", default="terminal12345", help='its shared secret ("" for none)')
    parser.add_argument("--txn-id", default=None, help="the agent's transaction id (default: from the clock)")
    parser.add_argument("--repeat", action="store_true", help="send the pay a second time")
    args = parser.parse_args(argv)
    txn_id = args.txn_id or str(time.time_ns() // 1000)
    common = {"txn_id": txn_id, "account": args.account, "sum": args.sum}
    try:
        checked = send(args.url, args.agent, args.secret, {"command": "check", **common})
        show("check", checked)
        if checked.get("result") != "0":
            return 1
        when = datetime.now().strftime("%Y%m%d%H%M%S")
        for _ in range(2 if args.repeat else 1):
            paid = send(args.url, args.agent, args.secret, {"command": "pay", "txn_date": when, **common})
            show("pay", paid)
    except (OSError, ET.ParseError) as e:
        print(f"cannot reach the portal at {args.url}: {e}", file=sys.stderr)
        return 2
    return 0 if paid.get("result") == "0" else 1


if __name__ == "__main__":
    sys.exit(main())
