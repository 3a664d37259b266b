"""The shared emulator server: outages look like outages, also to a client that keeps its
connection open."""
from __future__ import annotations

import pytest
import requests

from portal.platforms.webhook.emulator import WebhookReceiver


def test_a_kept_alive_client_sees_the_platform_go_down_and_come_back():
    """When the platform goes down, does a client with an open keep-alive connection get
    refused too, and served again once it is back on the same port?"""
    receiver = WebhookReceiver().start()
    session = requests.Session()
    try:
        assert session.post(receiver.url, json={"login": "a"}, timeout=5).status_code == 200
        receiver.down()
        with pytest.raises(requests.ConnectionError):
            session.post(receiver.url, json={"login": "a"}, timeout=5)
        receiver.up()
        assert session.post(receiver.url, json={"login": "b"}, timeout=5).status_code == 200
        assert set(receiver.states) == {"a", "b"}
    finally:
        receiver.stop()


def test_failures_match_by_keyword_and_count_down():
    """A failure for one login hits only that login, and `times` failures then heal."""
    receiver = WebhookReceiver().start()
    try:
        receiver.fail("busy", status=503, times=2, login="x")
        codes = [requests.post(receiver.url, json={"login": login}, timeout=5).status_code
                 for login in ("y", "x", "x", "x")]
        assert codes == [200, 503, 503, 200]
    finally:
        receiver.stop()
