"""The progress engine of one process group: a background thread running its operations in order.

torch.distributed hands every collective to the backend and expects a Work back
at once; DDP launches one all-reduce per gradient bucket from inside the
backward pass and only waits for them at the end. Each process group owns one
thread that takes operations off a FIFO queue and runs them one at a time on
the group's own Communicator, so every rank executes the group's collectives
in the order they were issued (the order torch.distributed requires of its
callers). The compiled executor releases the GIL while it waits on MPI, so the
backward pass keeps computing while a bucket is in flight.

A blocking call (``dist.all_reduce(t)`` without ``async_op=True``: torch says so
in ``opts.asyncOp``) that finds the queue empty runs in the calling thread, which
saves the hand-over to the worker; otherwise it queues behind the operations
already issued. With ``async_op=False`` (``COLLECTIVES_TORCH_ASYNC=0``) every
operation runs in the calling thread before the call returns, and its Work is
already complete (no overlap with the backward pass).

With ``Options(requests=True)`` (``COLLECTIVES_TORCH_REQUESTS=1``), an
asynchronous all-reduce (``async_op=True``) is a library request
(``Communicator.iallreduce``) and returns a :class:`RequestWork`: its
``wait()`` drives the request in the waiting thread, which saves the hand-over
to the worker and back. It is an option, and the thread the default, because
starting a request costs more than the hand-over it saves (measured with
bench/bench_torch_hook.py --split). The request is started in the calling thread when
nothing is queued, else by the worker in its place in the queue, so every rank
starts the group's operations in the order they were issued whatever its
queue holds. A future needs someone to complete it, so ``get_future()`` (what
DDP and the functional collectives wait on) hands the waiting to the worker,
and operations issued after that queue behind it. (Every all-reduce of the
group is a request, blocking ones too, so that ranks that choose differently
between ``async_op`` True and False for one call still use the same tags.)
"""

from __future__ import annotations

import queue
import threading
import weakref

import torch

import torch.distributed as dist


class _Outcome:
    """What the operation raised, kept for Work.wait() to re-raise as it was."""
    __slots__ = ("error",)

    def __init__(self):
        self.error = None


def _unwrap(fut):
    value = fut.value()
    if isinstance(value, BaseException):
        raise value
    return value


def _new_future():
    """(future to complete, future to hand out, outcome).

    torch's ``Future.set_exception`` only stores the exception as the future's value
    for Python's ``wait()`` to raise: C++ readers (DDP's reducer, the Work made by
    ``_create_work_from_future``) see a successful future holding a Python object, and
    DDP crashes the process on it. An exception raised in a ``then`` callback, however,
    marks the child future as failed in C++, so every reader sees the error: the
    progress thread completes the parent with the result or the exception, and the
    child, handed out, fails properly.
    """
    base = torch.futures.Future()
    return base, base.then(_unwrap), _Outcome()


class Work(dist.Work):
    """A Work over the future the progress thread completes.

    ``wait()`` raises the operation's own exception (torch's future-wrapping Work
    returns True from ``wait()`` even when its future failed).
    """

    def __init__(self, fut, outcome):
        super().__init__()
        self._fut = fut
        self._outcome = outcome

    def wait(self, timeout=None):
        try:
            self._fut.wait()
        except Exception:
            if self._outcome.error is not None:
                raise self._outcome.error from None
            raise
        return True

    def get_future(self):
        return self._fut

    def is_completed(self):
        return self._fut.done()

    def is_success(self):
        return self._fut.done() and self._outcome.error is None

    def exception(self):
        return self._outcome.error

    def result(self):
        self.wait()
        return self._fut.value()

    def synchronize(self):
        pass

    def __repr__(self):
        state = "done" if self._fut.done() else "in flight"
        return f"<collectives.torch Work {state}>"


class P2PWork(dist.Work):
    """The Work of a point-to-point message: ``wait()`` completes the library's request
    (its deadline, its errors) in the waiting thread; ``_source_rank()`` says who sent
    a message received from any source."""

    def __init__(self, request, result, lock, reword):
        super().__init__()
        self._request = request
        self._result = result
        self._lock = lock          # one thread at a time moves the group's p2p requests
        self._reword = reword      # the backend's wording of a timeout
        self._fut = torch.futures.Future()
        self._error = None

    def wait(self, timeout=None):
        if self._fut.done():
            if self._error is not None:
                raise self._error
            return True
        seconds = timeout.total_seconds() if hasattr(timeout, "total_seconds") else timeout
        try:
            with self._lock:
                self._request.wait(seconds if seconds and seconds > 0 else None)
        except Exception as exc:
            self._error = self._reword(exc)
            self._fut.set_exception(self._error)
            raise self._error from exc
        self._fut.set_result(self._result)
        return True

    def is_completed(self):
        if not self._fut.done():
            with self._lock:
                done = self._request.test()
            if done:
                self.wait()
        return self._fut.done()

    def is_success(self):
        return self.is_completed() and self._error is None

    def exception(self):
        return self._error

    def get_future(self):
        return self._fut

    def result(self):
        self.wait()
        return self._result

    def synchronize(self):
        pass

    def _source_rank(self):
        status = self._request.status
        if status is None:
            self.wait()
            status = self._request.status
        return int(status.source)

    source_rank = _source_rank

    def __repr__(self):
        return f"<collectives.torch p2p Work {'done' if self._fut.done() else 'in flight'}>"


class RequestWork(dist.Work):
    """The Work of an operation started as a library request in the calling thread.

    ``wait()`` completes the request in the waiting thread; ``get_future()`` hands
    that to the group's worker thread (a future must complete without anyone
    waiting on the Work). One thread at a time moves the request (a lock).
    """

    def __init__(self, progress, result, reword, finish=None):
        super().__init__()
        self._progress = progress
        self._request = None
        self._start_error = None
        self._started = threading.Event()
        self._result = result
        self._reword = reword
        self._finish = finish          # run after the request completed (a copy back), or None
        self._lock = threading.Lock()
        self._base, self._fut, self._outcome = _new_future()
        self._handed = False

    def _begin(self, start):
        """Start the request (calling thread or worker); an error is kept for wait()."""
        try:
            self._request = start()
        except Exception as exc:  # noqa: BLE001 - errors reach wait(), as from the worker
            self._start_error = exc
        self._started.set()

    def _complete(self):
        """Wait for the request (once) and complete the future with the result or the error."""
        self._started.wait()
        with self._lock:
            if self._base.done():
                return
            try:
                if self._start_error is not None:
                    raise self._start_error
                self._request.wait()
                if self._finish is not None:
                    self._finish()
            except BaseException as exc:  # noqa: BLE001 - every failure must reach the waiter
                if not isinstance(exc, Exception):
                    exc = RuntimeError(f"collectives backend: operation interrupted: {exc!r}")
                exc = self._reword(exc)
                self._outcome.error = exc
                self._base.set_result(exc)
            else:
                self._base.set_result(self._result)
        self._progress._live.discard(self)

    def wait(self, timeout=None):
        self._complete()
        if self._outcome.error is not None:
            raise self._outcome.error
        return True

    def get_future(self):
        if not self._handed and not self._base.done():
            self._handed = True
            self._progress.submit(lambda: self._complete() or [])
        return self._fut

    def is_completed(self):
        if not self._base.done() and self._started.is_set() and self._lock.acquire(blocking=False):
            try:
                done = self._start_error is not None or self._request.test()
            except Exception:  # noqa: BLE001 - _complete records it
                done = True
            finally:
                self._lock.release()
            if done:
                self._complete()
        return self._base.done()

    def is_success(self):
        return self.is_completed() and self._outcome.error is None

    def exception(self):
        return self._outcome.error

    def result(self):
        self.wait()
        return self._result

    def synchronize(self):
        pass

    def __repr__(self):
        return f"<collectives.torch request Work {'done' if self._base.done() else 'in flight'}>"


def completed_work(result):
    base, fut, outcome = _new_future()
    base.set_result(result)
    return Work(fut, outcome)


class Progress:
    """One worker thread per process group; ``submit`` returns a Work completed by it."""

    def __init__(self, name: str, async_op: bool = True):
        self.name = name
        self.async_op = bool(async_op)
        self._queue: "queue.SimpleQueue" = queue.SimpleQueue()
        self._thread = None
        self._closed = False
        self._lock = threading.Lock()
        self._mutex = threading.Lock()   # guards _pending
        self._exec = threading.Lock()    # held while an operation runs
        self._pending = 0                # queued or running in the worker
        self._live = weakref.WeakSet()   # RequestWorks started and not yet completed

    def _start(self):
        with self._lock:
            if self._thread is None:
                t = threading.Thread(target=self._loop, name=f"collectives-torch-{self.name}",
                                     daemon=True)
                t.start()
                self._thread = t

    def submit(self, fn, blocking: bool = False):
        """Run ``fn()`` (which returns the list of output tensors) and return a Work for it.

        ``blocking``: the caller waits for the result at once, so it may run inline.
        """
        if self._closed:
            raise RuntimeError(
                f"collectives backend: process group {self.name} was shut down "
                "(destroy_process_group); create a new one")
        base, fut, outcome = _new_future()
        if not self.async_op:
            _run(fn, base, outcome)
            return Work(fut, outcome)
        with self._mutex:
            inline = blocking and self._pending == 0
            if inline:
                self._exec.acquire()
            else:
                self._pending += 1
        if inline:
            try:
                _run(fn, base, outcome)
            finally:
                self._exec.release()
            return Work(fut, outcome)
        if self._thread is None:
            self._start()
        self._queue.put((fn, base, outcome))
        return Work(fut, outcome)

    def start_request(self, start, result, reword, finish=None):
        """A RequestWork for ``start()`` (which starts a library request and returns it).

        Started in the calling thread when no operation is queued or running, so
        it comes after every operation issued before it; otherwise the worker
        starts it in its turn (and goes on without waiting for it). In
        synchronous mode (``async_op=False``) None: the caller runs the
        operation itself. An error of ``start()`` is delivered by the Work.
        """
        if not self.async_op:
            return None
        if self._closed:
            raise RuntimeError(
                f"collectives backend: process group {self.name} was shut down "
                "(destroy_process_group); create a new one")
        work = RequestWork(self, result, reword, finish)
        with self._mutex:
            inline = self._pending == 0 and not self._exec.locked()
            if inline:
                work._begin(start)
            else:
                self._pending += 1
            self._live.add(work)
        if not inline:
            if self._thread is None:
                self._start()
            base, _, outcome = _new_future()   # the start's own completion: nobody reads it
            self._queue.put((lambda: work._begin(start) or [], base, outcome))
        return work

    def _loop(self):
        get = self._queue.get
        while True:
            item = get()
            if item is None:
                return
            with self._exec:
                _run(*item)
            with self._mutex:
                self._pending -= 1

    def close(self, wait: bool = True):
        """Finish the queued operations (wait=True) and stop the thread."""
        if self._closed:
            return
        self._closed = True
        if wait:
            for work in list(self._live):
                try:
                    work._complete()
                except Exception:  # noqa: BLE001 - reported by the Work
                    pass
        if self._thread is not None:
            self._queue.put(None)
            if wait:
                self._thread.join()
            self._thread = None


def _run(fn, base, outcome):
    try:
        result = fn()
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the waiter
        if not isinstance(exc, Exception):
            exc = RuntimeError(f"collectives backend: operation interrupted: {exc!r}")
        outcome.error = exc
        base.set_result(exc)
    else:
        base.set_result(result)
