"""The callbacks' wrong-credential limit across web processes (portal/api/throttle.py): the
count is shared in Redis, and a process answers from what it learnt of it."""
from portal.api.throttle import FailureLimit


def test_each_process_refuses_after_its_first_failure_past_the_shared_limit(app):
    """Two processes' limits on one Redis: guesses from one address all went to the first until
    the limit; does the second, which has seen none, check one more guess, and then refuse the
    address too, with the time left in the window?"""
    limit = app.config["CALLBACK_MAX_FAILURES"]
    window = app.config["CALLBACK_FAILURE_WINDOW"]
    first, second = FailureLimit("throttle-test"), FailureLimit("throttle-test")
    with app.app_context():
        for _ in range(limit):
            assert first.wait("192.0.2.7") == 0
            first.fail("192.0.2.7")
        assert 0 < first.wait("192.0.2.7") <= window
        assert second.wait("192.0.2.7") == 0  # it has not heard yet: this guess is checked
        second.fail("192.0.2.7")
        assert 0 < second.wait("192.0.2.7") <= window
        assert first.wait("192.0.2.8") == second.wait("192.0.2.8") == 0  # another address is not affected


def test_a_full_memory_of_refused_addresses_is_pruned_safely_by_parallel_failures(app, monkeypatch):
    """gthread workers: many threads record failures while the memory of refused addresses is
    full and being pruned; does every failure still count, none raising (a 500 to the caller)?"""
    import sys
    import threading

    from portal.api import throttle

    monkeypatch.setattr(throttle, "LOCAL_MAX_KEYS", 2000)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch often, as under load
    limit = FailureLimit("throttle-prune")
    errors: list = []

    def fail_many(n: int):
        try:
            for i in range(3000):
                limit._remember(f"k{n}-{i}", 60)
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=fail_many, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(switch)
    assert errors == []
    assert len(limit._refused) <= 2000
