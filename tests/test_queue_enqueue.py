"""enqueue_once: one job per id while it waits, a follow-up while one runs, a finished or failed
one replaced; the usual cases in one Redis round trip (portal.queue._enqueue_fast), the jobs it
writes are RQ's own (a real RQ worker runs them)."""
from __future__ import annotations

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
