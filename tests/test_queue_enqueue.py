"""enqueue_once: one job per id while it waits, a follow-up while one runs, a finished or failed
one replaced; the usual cases in one Redis round trip (the script portal.queue._ENQUEUE_ONCE, its
command made from a per-process template of RQ's job hash), the jobs it writes are RQ's own, field
by field (a real RQ worker runs them)."""
from __future__ import annotations

import os

from rq import SimpleWorker
from rq.job import Job, JobStatus

from portal.queue import enqueue_once, get_queue, get_redis

QUEUE = "enqueue-test"
FUNC = "os.path.join"  # importable anywhere, no app needed


def add(job_id: str, *args, running_covers: bool = True) -> bool:
    return enqueue_once(QUEUE, FUNC, *args, job_id=job_id, running_covers=running_covers, result_ttl=60,
                        job_timeout=123)


def test_a_job_added_is_rqs_own_and_a_worker_runs_it(ctx):
    """Is a job that enqueue_once wrote in one round trip a job RQ knows (its queue, its timeout,
    its arguments), and does a real RQ worker run it?"""
    get_redis().flushdb()
    assert add("j-1", "a", "b") is True
    queue = get_queue(QUEUE)
    assert queue.job_ids == ["j-1"] and QUEUE in [q.name for q in type(queue).all(connection=get_redis())]
    job = Job.fetch("j-1", connection=get_redis())
    assert (job.func_name, job.args, job.timeout, job.result_ttl, job.origin) == (FUNC, ("a", "b"), 123, 60, QUEUE)
    assert job.get_status() == JobStatus.QUEUED
    SimpleWorker([queue], connection=get_redis()).work(burst=True)
    job = Job.fetch("j-1", connection=get_redis())
    assert job.get_status() == JobStatus.FINISHED and job.return_value() == "a/b"


def test_a_waiting_job_covers_a_repeat_and_a_finished_or_failed_one_is_replaced(ctx):
    """While the job waits, asking again adds nothing; once it has finished (or failed), the next
    ask queues it again."""
    get_redis().flushdb()
    queue = get_queue(QUEUE)
    assert add("j-2", "x") is True
    assert add("j-2", "x") is False and queue.job_ids == ["j-2"]
    SimpleWorker([queue], connection=get_redis()).work(burst=True)
    assert queue.job_ids == [] and Job.fetch("j-2", connection=get_redis()).get_status() == JobStatus.FINISHED
    assert add("j-2", "x") is True and queue.job_ids == ["j-2"]
    Job.fetch("j-2", connection=get_redis()).set_status(JobStatus.FAILED)
    queue.remove("j-2")
    assert add("j-2", "x") is True and queue.job_ids == ["j-2"]
    assert Job.fetch("j-2", connection=get_redis()).get_status() == JobStatus.QUEUED


def test_a_running_job_gets_one_follow_up_unless_it_covers_the_change(ctx):
    """A running job covers a change only when it says so (running_covers); otherwise one
    follow-up waits under id-next, and with both running a run of its own is queued."""
    get_redis().flushdb()
    queue = get_queue(QUEUE)
    assert add("j-3", "y") is True
    queue.remove("j-3")
    Job.fetch("j-3", connection=get_redis()).set_status(JobStatus.STARTED)  # a worker has it
    assert add("j-3", "y") is False and queue.job_ids == []
    assert add("j-3", "y", running_covers=False) is True and queue.job_ids == ["j-3-next"]
    assert add("j-3", "y", running_covers=False) is False and queue.job_ids == ["j-3-next"]
    queue.remove("j-3-next")
    Job.fetch("j-3-next", connection=get_redis()).set_status(JobStatus.STARTED)
    assert add("j-3", "y", running_covers=False) is True
    [own] = queue.job_ids
    assert own.startswith("j-3-") and own != "j-3-next"


def test_several_asks_after_a_commit_go_in_one_round_trip_and_each_gets_its_answer(ctx, monkeypatch):
    """enqueue_once_many (the after-commit hand-off of the outbox and the notifications together):
    a new job, one that waits already and one that finished each get enqueue_once's answer; with
    the script loaded the usual cases take one Redis round trip for all of them, and a Redis that
    has forgotten the script (restarted) still gets every job."""
    from redis.connection import AbstractConnection

    from portal.queue import enqueue_once_many

    get_redis().flushdb()
    queue = get_queue(QUEUE)
    assert add("m-wait", "w") is True
    assert add("m-done", "d") is True
    queue.remove("m-done")
    Job.fetch("m-done", connection=get_redis()).set_status(JobStatus.FINISHED)
    options = {"result_ttl": 60, "job_timeout": 123}
    calls = [(QUEUE, FUNC, ("n",), "m-new", True, options), (QUEUE, FUNC, ("w",), "m-wait", True, options),
             (QUEUE, FUNC, ("d",), "m-done", True, options)]
    sent = []
    original = AbstractConnection.send_packed_command
    monkeypatch.setattr(AbstractConnection, "send_packed_command",
                        lambda conn, command, check_health=True: (sent.append(1), original(conn, command,
                                                                                         check_health))[1])
    assert enqueue_once_many(calls) == [True, False, True]
    assert sorted(queue.job_ids) == ["m-done", "m-new", "m-wait"]
    get_redis().flushdb()
    sent.clear()
    assert enqueue_once_many(calls[:2]) == [True, True]
    assert len(sent) == 1  # both new: one pipeline
    get_redis().script_flush()
    get_redis().flushdb()
    assert enqueue_once_many(calls[:2]) == [True, True] and sorted(queue.job_ids) == ["m-new", "m-wait"]


# enqueue_once_many's calls in the shapes the app uses (the outbox's pair job, the notifications'
# prepare job) and the ones it may: a description cut short, non-ASCII arguments, every option
# the script knows, meta (a value that cannot key a template: the job's own hash from RQ)
SHAPES = [
    ("os.path.join", ("smotreshka", "12"), False, {"result_ttl": 0, "job_timeout": 600}),
    ("os.getcwd", (), False, {"result_ttl": 0, "job_timeout": 1200}),
    ("os.path.join", ("Пётр Петрович " * 8, "%s 100%"), True, {"result_ttl": 60}),
    ("os.path.join", ("a", "b"), True, {"job_timeout": 123, "result_ttl": 60, "ttl": 300, "failure_ttl": 30,
                                         "description": "joins a and b"}),
    ("os.path.join", ("a", "b"), True, {"result_ttl": 60, "meta": {"who": "test"}}),
]


def test_the_hand_off_writes_the_hash_rqs_own_enqueue_writes_and_a_worker_runs_it(ctx):
    """Is each job the after-commit hand-off writes (and its -next follow-up) the very hash RQ's
    own Queue.enqueue writes for the same job, field by field but its two timestamps, with the
    same expiry, in the same queue, and does a real RQ worker run both alike?"""
    from rq.registry import FailedJobRegistry
    from rq.utils import utcparse

    from portal.queue import enqueue_once_many

    redis = get_redis()
    queue = get_queue(QUEUE)
    for func, args, running_covers, options in SHAPES:
        redis.flushdb()
        assert enqueue_once_many([(QUEUE, func, args, "mine", running_covers, options)]) == [True]
        ours = ["mine"]
        if not running_covers:  # a worker has it: the follow-up under -next
            queue.remove("mine")
            Job.fetch("mine", connection=redis).set_status(JobStatus.STARTED)
            assert enqueue_once_many([(QUEUE, func, args, "mine", running_covers, options)]) == [True]
            ours = ["mine-next"]
        queue.enqueue(func, *args, job_id="rqs", **options)
        rqs = redis.hgetall("rq:job:rqs")
        for job_id in ours:
            mine = redis.hgetall(f"rq:job:{job_id}")
            assert sorted(mine) == sorted(rqs), (func, options)
            for field in rqs:
                if field in (b"created_at", b"enqueued_at"):
                    assert abs((utcparse(mine[field].decode()) - utcparse(rqs[field].decode())).total_seconds()) < 5
                else:
                    assert mine[field] == rqs[field], (field, func, options)
            assert abs(redis.ttl(f"rq:job:{job_id}") - redis.ttl("rq:job:rqs")) <= 1
        assert queue.job_ids == [*ours, "rqs"] and redis.smembers("rq:queues") == {queue.key.encode()}
        SimpleWorker([queue], connection=redis).work(burst=True)
        assert queue.count == 0 and FailedJobRegistry(queue=queue).count == 0
        if options["result_ttl"]:
            results = [Job.fetch(i, connection=redis).return_value() for i in [*ours, "rqs"]]
            assert results[0] == results[-1] == os.path.join(*args)


def test_a_job_hash_the_template_does_not_know_is_left_to_rq(ctx, monkeypatch, caplog):
    """Were RQ (upgraded) to write a field that varies with the job's arguments, would the jobs
    still carry RQ's own hash (the hand-off's template checks itself against RQ once)?"""
    from portal import queue as queue_module

    get_redis().flushdb()
    original = queue_module._build_hset_args
    monkeypatch.setattr(queue_module, "_build_hset_args", lambda job: [*original(job), "args_seen", repr(job.args)])
    monkeypatch.setattr(queue_module, "_templates", {})
    assert add("j-rq", "a", "b") is True and add("j-rq2", "c", "d") is True
    assert get_redis().hget("rq:job:j-rq2", "args_seen") == b"('c', 'd')"
    assert "RQ's job hash changed" in caplog.text
    SimpleWorker([get_queue(QUEUE)], connection=get_redis()).work(burst=True)
    assert Job.fetch("j-rq2", connection=get_redis()).return_value() == "c/d"
