"""``blis observe``: send a workload spec's requests to a real OpenAI-compatible server and record
what happened as a trace v2 (``mode: real``), the input of calibration and of a faithful replay.

``blis observe --server-url URL --model NAME --workload-spec SPEC --trace-output DIR
[--concurrency N] [--num-requests N] [--seed S] [--timeout SECONDS] [--max-retries K]
[--retry-backoff SECONDS] [--endpoint completions|chat] [--api-key KEY]``

1. The requests (arrival times, exact token ids, output lengths, clients, SLO classes) come from
   the project's generator (:func:`simulator.workload.generator.generate_spec_requests`), so the
   same spec and seed give the same requests as ``blis run``.  ``--workload-spec`` may also
   name a trace v2 (its requests are re-sent).
2. One probe request (one prompt token, one output token) checks that the server is reachable,
   knows the model and streams (``text/event-stream``); otherwise one line
   ``blis: error: --server-url: ...`` and exit 2, nothing written.
3. Each request is sent at its arrival time (µs since the run start; open loop) with
   ``"stream": true``; ``--concurrency N`` caps the requests in flight (later ones wait, FIFO).
   ``/v1/completions`` gets the prompt as its list of token ids (the server sees exactly
   ``n_in`` tokens), ``max_tokens = min_tokens = n_out`` and ``ignore_eos``;
   ``/v1/chat/completions`` gets one user message whose content is the ids joined by spaces,
   so the token counts there depend on the server's tokenizer (recorded as the server reports
   them).  ``stream_options.include_usage`` asks for the server's token counts.
4. HTTP 429/503 and connections dropped before the first chunk are retried with exponential
   backoff (``--retry-backoff`` doubling per retry, at most ``--max-retries`` retries);
   ``--timeout`` bounds each attempt.  Outcomes: ``ok``; ``rejected`` (any other HTTP 4xx);
   ``error`` (retries exhausted, other HTTP 5xx, a connection dropped mid-stream, an error
   event, a non-streaming answer); ``timeout``; ``cancelled`` (Ctrl-C).
5. The trace (:func:`simulator.workload.tracev2.write_observed_trace`) holds every generated
   request exactly once, in arrival order: ``arrival_time_us`` scheduled, ``send_time_us``
   actual (of the last attempt), first/last content-chunk times, content chunks, status and
   message; ``observed.csv`` adds attempts, the first attempt's send time and the server's
   token counts; ``tokens.npz`` the exact ids sent.

Ctrl-C stops sending, cancels the requests in flight and writes everything recorded so far
(in-flight and unsent requests with status ``cancelled``), then exits 130.  A summary line on
stderr counts statuses, retries and server token counts that differ from what was sent.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Sequence
from urllib.parse import urlsplit

import numpy as np

from simulator.errors import InputError
from simulator.workload.generator import generate_spec_requests
from simulator.workload.spec import load_workload_spec
from simulator.workload.tracev2 import (ObservedRecords, clients_from_spec, head_trace,
                                        is_trace_v2, read_trace_v2, write_observed_trace)

from .commands import EXIT_INTERRUPTED, EXIT_OK, check_output_dir, one_line, run_subcommand
from .flags import InputErrorParser


ENDPOINTS = {"completions": "/v1/completions", "chat": "/v1/chat/completions"}
RETRY_HTTP_STATUSES = (429, 503)
DEFAULT_TIMEOUT_S = 600.0
DEFAULT_MAX_RETRIES = 3
DEFAULT_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
PROBE_TIMEOUT_S = 60.0
NOT_SENT = "not sent: interrupted before it was sent"
SERVER_TYPE = "openai-compatible"


# ---------------------------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObserveOptions:
    """The validated ``blis observe`` flags (``concurrency`` 0 = unbounded; ``num_requests`` and
    ``seed`` None = the spec's)."""

    server_url: str
    model: str
    workload_spec: str
    trace_output: str
    concurrency: int = 0
    num_requests: int | None = None
    seed: int | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_retries: int = DEFAULT_MAX_RETRIES
    retry_backoff_s: float = DEFAULT_BACKOFF_S
    endpoint: str = "completions"
    api_key: str = ""

    @property
    def url(self) -> str:
        """The full URL requests are POSTed to."""
        return self.server_url + ENDPOINTS[self.endpoint]


def _int_type(lo: int, what: str):
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            value = None
        if value is None or value < lo:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value
    return parse


def _float_type(lo: float, strict: bool, what: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < lo or (strict and value == lo):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value
    return parse


def build_parser(prog: str = "blis observe") -> InputErrorParser:
    """The ``blis observe`` argument parser (errors raise a one-line InputError)."""
    p = InputErrorParser(prog=prog, description="Send a workload spec's requests to an "
                         "OpenAI-compatible server and record a trace v2 (mode: real).")
    p.add_argument("--server-url", required=True,
                   help="base URL of the server, e.g. http://localhost:8000 (a trailing /v1 "
                   "is accepted)")
    p.add_argument("--model", required=True, help="model name sent in every request")
    p.add_argument("--workload-spec", required=True,
                   help="workload spec YAML, preset:NAME, or a trace v2 directory")
    p.add_argument("--trace-output", required=True, help="directory to write the trace v2 to")
    p.add_argument("--concurrency", type=_int_type(0, "an integer >= 0 (0 = unbounded)"),
                   default=0, help="max requests in flight (default 0: unbounded, open loop)")
    p.add_argument("--num-requests", type=_int_type(1, "an integer >= 1"), default=None,
                   help="send the first N requests (default: the spec's num_requests)")
    p.add_argument("--seed", type=_int_type(-(2**63), "an integer"), default=None,
                   help="workload seed (default: the spec's seed)")
    p.add_argument("--timeout", type=_float_type(0.0, True, "a number of seconds > 0"),
                   default=DEFAULT_TIMEOUT_S, help="per-attempt timeout in seconds "
                   f"(default {DEFAULT_TIMEOUT_S:g})")
    p.add_argument("--max-retries", type=_int_type(0, "an integer >= 0"),
                   default=DEFAULT_MAX_RETRIES, help="retries on HTTP 429/503 and on "
                   f"connections dropped before the first chunk (default {DEFAULT_MAX_RETRIES})")
    p.add_argument("--retry-backoff", type=_float_type(0.0, False, "a number of seconds >= 0"),
                   default=DEFAULT_BACKOFF_S, help="first retry delay in seconds, doubled per "
                   f"retry up to {MAX_BACKOFF_S:g} (default {DEFAULT_BACKOFF_S:g})")
    p.add_argument("--endpoint", choices=tuple(ENDPOINTS), default="completions",
                   help="completions (prompt = token ids) or chat (ids joined by spaces)")
    p.add_argument("--api-key", default="", help="bearer token sent as Authorization")
    return p


def normalize_server_url(text: str) -> str:
    """``--server-url`` without trailing ``/`` or ``/v1``; InputError unless http(s)://host."""
    try:
        parts = urlsplit(text.strip())
        parts.port  # noqa: B018 - validates the port number
    except ValueError as exc:
        raise InputError(f"--server-url: {text!r} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query \
            or parts.fragment:
        raise InputError(f"--server-url: must be an http:// or https:// URL like "
                         f"http://localhost:8000, got {text!r}")
    url = text.strip().rstrip("/")
    return url[:-3] if url.endswith("/v1") else url


def parse_observe_args(argv: Sequence[str], prog: str = "blis observe") -> ObserveOptions:
    """Parse and validate ``blis observe`` flags; raises InputError (one line) on bad input."""
    ns = build_parser(prog).parse_args(list(argv))
    if not ns.model.strip():
        raise InputError("--model: must not be empty")
    return ObserveOptions(
        server_url=normalize_server_url(ns.server_url), model=ns.model,
        workload_spec=ns.workload_spec, trace_output=ns.trace_output,
        concurrency=ns.concurrency, num_requests=ns.num_requests, seed=ns.seed,
        timeout_s=ns.timeout, max_retries=ns.max_retries, retry_backoff_s=ns.retry_backoff,
        endpoint=ns.endpoint, api_key=ns.api_key)


# ---------------------------------------------------------------------------------------------
# Workload
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObserveWorkload:
    """The requests to send: ``details`` (a SpecRequests; ``details.workload`` has arrivals,
    ids and lengths) and what the trace header records about their origin."""

    details: object
    clients: list
    workload_spec: str
    horizon: int | None
    slo_targets: dict | None

    @property
    def workload(self):
        """The request table (arrival_us, n_in, n_out, token_ptr, tokens, ...)."""
        return self.details.workload

    def prompt(self, i: int) -> np.ndarray:
        """Token ids of request ``i``'s prompt (its first ``n_in`` ids)."""
        wl = self.workload
        start = int(wl.token_ptr[i])
        return wl.tokens[start:start + int(wl.n_in[i])]


def load_observe_workload(opts: ObserveOptions) -> ObserveWorkload:
    """Generate (or, for a trace v2, read) the requests of ``--workload-spec``.

    ``--num-requests`` / ``--seed`` override the spec's; a spec needs ``num_requests`` or a
    ``horizon`` to bound generation.  Raises InputError naming the flag on bad input."""
    if is_trace_v2(opts.workload_spec):
        return _trace_workload(opts)
    spec = load_workload_spec(opts.workload_spec)
    limit = opts.num_requests if opts.num_requests is not None else spec.num_requests
    if limit <= 0 and spec.horizon <= 0:
        raise InputError("--workload-spec: the spec sets neither num_requests nor horizon; "
                         "give --num-requests N")
    details = generate_spec_requests(spec, horizon_us=None, max_requests=limit, seed=opts.seed)
    return _nonempty(ObserveWorkload(details, clients_from_spec(spec), opts.workload_spec,
                                     spec.horizon or None,
                                     spec.slo_targets_by_class() or None))


def _trace_workload(opts: ObserveOptions) -> ObserveWorkload:
    """The requests of a trace v2 (``--workload-spec DIR``), optionally the first N."""
    trace = read_trace_v2(opts.workload_spec, seed=opts.seed or 0)
    if opts.num_requests is not None:
        trace = head_trace(trace, opts.num_requests)
    return _nonempty(ObserveWorkload(trace.requests, list(trace.clients),
                                     trace.header.get("workload_spec", opts.workload_spec),
                                     trace.horizon, trace.slo_targets))


def _nonempty(w: ObserveWorkload) -> ObserveWorkload:
    if w.workload.num_requests == 0:
        raise InputError("--workload-spec: the workload has no requests to send")
    return w


def request_body(endpoint: str, model: str, prompt_ids: Sequence[int], n_out: int) -> dict:
    """The JSON body of one streaming request: the prompt as token ids (completions) or as one
    user message of space-joined ids (chat), exactly ``n_out`` output tokens asked for
    (``max_tokens = min_tokens = n_out``, ``ignore_eos``) and the usage report requested."""
    n_out = max(int(n_out), 1)
    ids = [int(t) for t in prompt_ids]
    body: dict = {"model": model}
    if endpoint == "chat":
        body["messages"] = [{"role": "user", "content": " ".join(map(str, ids))}]
    else:
        body["prompt"] = ids
    body.update({"max_tokens": n_out, "min_tokens": n_out, "ignore_eos": True, "stream": True,
                 "stream_options": {"include_usage": True}})
    return body


# ---------------------------------------------------------------------------------------------
# Server-sent events
# ---------------------------------------------------------------------------------------------

DONE = "[DONE]"


def parse_sse_line(line: bytes):
    """One SSE line → the decoded JSON object of a ``data:`` line, :data:`DONE` for
    ``data: [DONE]``, or None (blank lines, comments, other fields, undecodable data)."""
    if not line.startswith(b"data:"):
        return None
    payload = line[5:].strip()
    if payload == b"[DONE]":
        return DONE
    try:
        obj = json.loads(payload)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def has_content(chunk: dict) -> bool:
    """Whether a streamed chunk carries generated text (completions ``text``, chat
    ``delta.content`` / ``delta.reasoning_content``); role-only and usage-only chunks do not."""
    for choice in chunk.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        if choice.get("text"):
            return True
        delta = choice.get("delta")
        if isinstance(delta, dict) and (delta.get("content") or delta.get("reasoning_content")):
            return True
    return False


# ---------------------------------------------------------------------------------------------
# Per-request records
# ---------------------------------------------------------------------------------------------


@dataclass
class RequestRecord:
    """What happened to one request (times µs since the run start; 0 / -1 when absent)."""

    status: str = "cancelled"
    message: str = NOT_SENT
    attempts: int = 0
    first_send_us: int = -1
    send_us: int = 0
    first_chunk_us: int = 0
    last_chunk_us: int = 0
    num_chunks: int = 0
    prompt_tokens: int = -1
    completion_tokens: int = -1

    def start_attempt(self, attempt: int, now_us: int) -> None:
        """Reset the per-attempt fields for attempt number ``attempt`` sent at ``now_us``."""
        self.attempts = attempt
        self.send_us = now_us
        if attempt == 1:
            self.first_send_us = now_us
        self.first_chunk_us = self.last_chunk_us = self.num_chunks = 0
        self.prompt_tokens = self.completion_tokens = -1

    def sent(self, now_us: int) -> None:
        """The request (headers and body) of the current attempt was written at ``now_us``:
        the send time, as close to the server's receipt as the client can tell."""
        self.send_us = now_us
        if self.attempts == 1:
            self.first_send_us = now_us

    def chunk(self, now_us: int) -> None:
        """Count one content chunk received at ``now_us``."""
        if self.num_chunks == 0:
            self.first_chunk_us = now_us
        self.last_chunk_us = now_us
        self.num_chunks += 1

    def usage(self, usage: dict) -> None:
        """Keep the server's reported prompt/completion token counts."""
        for key, attr in (("prompt_tokens", "prompt_tokens"),
                          ("completion_tokens", "completion_tokens")):
            v = usage.get(key)
            if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
                setattr(self, attr, v)


def observed_records(records: Sequence[RequestRecord]):
    """The records as a :class:`simulator.workload.tracev2.ObservedRecords` (trace order)."""
    col = lambda name: np.array([getattr(r, name) for r in records], dtype=np.int64)  # noqa: E731
    return ObservedRecords(col("send_us"), col("first_chunk_us"), col("last_chunk_us"),
                           col("num_chunks"), tuple(r.status for r in records),
                           tuple(r.message for r in records), col("attempts"),
                           col("first_send_us"), col("prompt_tokens"),
                           col("completion_tokens"))


@dataclass(frozen=True)
class _Outcome:
    """The result of one attempt: ``status`` is ``ok``/``error``/``rejected``/``timeout``, or
    ``retry`` (a retryable failure described by ``message``)."""

    status: str
    message: str = ""


# ---------------------------------------------------------------------------------------------
# The observer: dispatch at arrival times, stream, retry, record
# ---------------------------------------------------------------------------------------------


class Observer:
    """Sends every request of ``work`` at its arrival time through ``session`` (an aiohttp
    ClientSession made with :meth:`trace_config`; set before :meth:`run`) and fills ``records``
    (one per request).  :meth:`interrupt` stops sending and cancels in flight.  Construct it
    inside the running event loop."""

    def __init__(self, opts: ObserveOptions, work: ObserveWorkload, session=None,
                 progress=None):
        self.opts = opts
        self.work = work
        self.session = session
        self.progress = progress
        n = work.workload.num_requests
        self.records = [RequestRecord() for _ in range(n)]
        self.interrupted = False
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()
        self._sem = asyncio.Semaphore(opts.concurrency) if opts.concurrency > 0 else None
        self._tasks: set[asyncio.Task] = set()
        self._dispatcher: asyncio.Task | None = None
        self._headers = {"Authorization": f"Bearer {opts.api_key}"} if opts.api_key else {}

    def now_us(self) -> int:
        """µs since the run start (monotonic clock)."""
        return int(round((self.loop.time() - self.t0) * 1e6))

    def trace_config(self):
        """An aiohttp TraceConfig that stamps :meth:`RequestRecord.sent` when a request's
        headers and body have been written (pass it to the ClientSession)."""
        import aiohttp  # lazy: aiohttp loads only once a run reaches the network

        async def on_sent(session, ctx, params) -> None:
            rec = ctx.trace_request_ctx
            if isinstance(rec, RequestRecord):
                rec.sent(self.now_us())

        tc = aiohttp.TraceConfig()
        tc.on_request_headers_sent.append(on_sent)
        tc.on_request_chunk_sent.append(on_sent)
        return tc

    async def run(self) -> None:
        """Send everything (the run starts now) and wait for every request to finish."""
        self.t0 = self.loop.time()
        self._dispatcher = asyncio.create_task(self._dispatch())
        try:
            await self._dispatcher
        except asyncio.CancelledError:
            if not self.interrupted:
                raise
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def interrupt(self) -> None:
        """Stop sending and cancel the requests in flight (their records say ``cancelled``)."""
        if self.interrupted:
            return
        self.interrupted = True
        if self._dispatcher is not None:
            self._dispatcher.cancel()
        for task in list(self._tasks):
            task.cancel()

    async def _dispatch(self) -> None:
        arrival = self.work.workload.arrival_us
        for i in range(len(self.records)):
            await _sleep_until(self.loop, self.t0 + float(arrival[i]) / 1e6)
            if self._sem is not None:
                await self._sem.acquire()
            task = asyncio.create_task(self._request(i))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _request(self, i: int) -> None:
        rec = self.records[i]
        rec.status, rec.message = "cancelled", "in flight when interrupted"
        try:
            outcome = await self._with_retries(i, rec)
            rec.status, rec.message = outcome.status, outcome.message
        except asyncio.CancelledError:
            rec.status = "cancelled"
            rec.message = f"in flight when interrupted (attempt {rec.attempts})"
            raise
        except Exception as exc:  # noqa: BLE001 - never lose a request
            rec.status, rec.message = "error", one_line(f"{type(exc).__name__}: {exc}")
        finally:
            if self._sem is not None:
                self._sem.release()
        if self.progress is not None:
            self.progress.update(1)

    async def _with_retries(self, i: int, rec: RequestRecord) -> _Outcome:
        wl = self.work.workload
        body = request_body(self.opts.endpoint, self.opts.model, self.work.prompt(i),
                            int(wl.n_out[i]))
        last = _Outcome("error", "not attempted")
        for attempt in range(1, self.opts.max_retries + 2):
            if attempt > 1:
                await asyncio.sleep(backoff_delay(self.opts.retry_backoff_s, attempt - 1))
            rec.start_attempt(attempt, self.now_us())
            last = await self._attempt(body, rec)
            if last.status != "retry":
                if last.status != "ok" and attempt > 1:
                    return _Outcome(last.status, f"attempt {attempt}: {last.message}")
                return last
        return _Outcome("error", f"gave up after {rec.attempts} attempts: {last.message}")

    async def _attempt(self, body: dict, rec: RequestRecord) -> _Outcome:
        import aiohttp  # lazy: as in trace_config

        try:
            async with asyncio.timeout(self.opts.timeout_s):
                async with self.session.post(self.opts.url, json=body, headers=self._headers,
                                             trace_request_ctx=rec) as resp:
                    return await self._response(resp, rec)
        except TimeoutError:
            return _Outcome("timeout", f"no complete response within {self.opts.timeout_s:g} s "
                            f"({rec.num_chunks} chunks received)")
        except (aiohttp.ClientError, ConnectionError) as exc:
            what = one_line(f"{type(exc).__name__}: {exc}")
            if rec.num_chunks == 0:
                return _Outcome("retry", f"connection dropped before the first chunk: {what}")
            return _Outcome("error", f"connection dropped after {rec.num_chunks} chunks: {what}")

    async def _response(self, resp, rec: RequestRecord) -> _Outcome:
        if resp.status != 200:
            text = one_line(await resp.text(errors="replace"))[:300]
            msg = f"HTTP {resp.status}: {text}"
            if resp.status in RETRY_HTTP_STATUSES:
                return _Outcome("retry", msg)
            return _Outcome("rejected" if 400 <= resp.status < 500 else "error", msg)
        ctype = resp.headers.get("Content-Type", "")
        if not ctype.startswith("text/event-stream"):
            return _Outcome("error", f"not a stream: Content-Type {ctype!r}")
        return await self._read_stream(resp, rec)

    async def _read_stream(self, resp, rec: RequestRecord) -> _Outcome:
        done = False
        async for line in resp.content:
            now = self.now_us()
            event = parse_sse_line(line)
            if event is None:
                continue
            if event == DONE:
                done = True
                break
            if event.get("error") is not None and not event.get("choices"):
                return _Outcome("error", "error event in stream: "
                                + one_line(event["error"])[:300])
            if isinstance(event.get("usage"), dict):
                rec.usage(event["usage"])
            if has_content(event):
                rec.chunk(now)
        if not done:
            return _Outcome("error", f"stream ended without [DONE] after {rec.num_chunks} chunks")
        if rec.num_chunks == 0:
            return _Outcome("error", "stream finished without any generated text")
        return _Outcome("ok")


def backoff_delay(base_s: float, retry: int) -> float:
    """Delay before retry number ``retry`` (1-based): ``base · 2^(retry−1)``, capped."""
    return min(base_s * (2.0 ** (retry - 1)), max(MAX_BACKOFF_S, base_s))


async def _sleep_until(loop: asyncio.AbstractEventLoop, deadline: float) -> None:
    """Sleep until ``loop.time() >= deadline`` (absolute, so delays do not accumulate)."""
    delay = deadline - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


# ---------------------------------------------------------------------------------------------
# Probe: reachable, model known, streaming
# ---------------------------------------------------------------------------------------------


async def probe_server(session, opts: ObserveOptions, prompt_ids: Sequence[int]) -> str:
    """Send one 1-token streaming request before the run; raise InputError (naming
    ``--server-url``) when the server cannot be reached, rejects the request or does not
    stream.  429/503 and dropped connections are retried like requests.  Returns a warning
    ("" when none)."""
    import aiohttp  # lazy: as in Observer.trace_config

    body = request_body(opts.endpoint, opts.model, list(prompt_ids)[:1] or [0], 1)
    headers = {"Authorization": f"Bearer {opts.api_key}"} if opts.api_key else {}
    problem = ""
    for attempt in range(opts.max_retries + 1):
        if attempt:
            await asyncio.sleep(backoff_delay(opts.retry_backoff_s, attempt))
        try:
            async with asyncio.timeout(min(opts.timeout_s, PROBE_TIMEOUT_S)):
                async with session.post(opts.url, json=body, headers=headers) as resp:
                    problem = await _probe_response(resp, opts)
                    if not problem:
                        return ""
        except aiohttp.ClientConnectorError as exc:
            raise InputError(f"--server-url: cannot connect to {opts.server_url}: "
                             f"{_connect_reason(exc)}") from None
        except TimeoutError:
            raise InputError(f"--server-url: no answer from POST {opts.url} within "
                             f"{min(opts.timeout_s, PROBE_TIMEOUT_S):g} s") from None
        except (aiohttp.ClientError, ConnectionError) as exc:
            problem = "dropped: " + one_line(f"{type(exc).__name__}: {exc}")
    if problem.startswith("dropped"):
        raise InputError(f"--server-url: POST {opts.url} failed {opts.max_retries + 1} times: "
                         f"connection {problem}")
    return f"probe request still answered {problem} after {opts.max_retries + 1} attempts"


async def _probe_response(resp, opts: ObserveOptions) -> str:
    """"" when the probe's answer is a 200 event stream (read to the end); the HTTP status for
    a retryable answer; raises InputError for any other answer."""
    if resp.status in RETRY_HTTP_STATUSES:
        return f"HTTP {resp.status}"
    if resp.status != 200:
        text = one_line(await resp.text(errors="replace"))[:200]
        raise InputError(f"--server-url/--model: POST {opts.url} answered HTTP {resp.status}: "
                         f"{text}")
    ctype = resp.headers.get("Content-Type", "")
    if not ctype.startswith("text/event-stream"):
        raise InputError(f"--server-url: POST {opts.url} with \"stream\": true answered "
                         f"Content-Type {ctype or 'none'!r}, not text/event-stream (the server "
                         f"does not stream)")
    await resp.read()
    return ""


def _connect_reason(exc) -> str:
    err = getattr(exc, "os_error", None)
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    return one_line(getattr(err, "strerror", None) or err or exc)


# ---------------------------------------------------------------------------------------------
# Run, write, summarise
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObserveResult:
    """A finished (or interrupted) observation: the records, whether Ctrl-C stopped it, the
    wall time (s) and the probe warning."""

    records: list
    interrupted: bool
    duration_s: float
    warning: str = ""


async def observe_async(opts: ObserveOptions, work: ObserveWorkload) -> ObserveResult:
    """Probe the server, then send every request of ``work`` (see the module docstring).
    SIGINT (when this runs in the main thread) interrupts the run cleanly."""
    # lazy: aiohttp and tqdm load only once a run reaches the network (bad input fails fast)
    import aiohttp
    from tqdm import tqdm

    observer = Observer(opts, work)
    connector = aiohttp.TCPConnector(limit=opts.concurrency)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(opts.timeout_s, 30.0))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     trace_configs=[observer.trace_config()]) as session:
        warning = await probe_server(session, opts, work.prompt(0))
        n = work.workload.num_requests
        print(f"blis observe: sending {n} requests to {opts.url} (model {opts.model}, "
              f"{_load_label(opts)})", file=sys.stderr, flush=True)
        with tqdm(total=n, desc="observe", unit="req", file=sys.stderr, disable=None,
                  leave=False) as bar:
            observer.session, observer.progress = session, bar
            loop = asyncio.get_running_loop()
            installed = _install_sigint(loop, observer.interrupt)
            start = time.perf_counter()
            try:
                await observer.run()
            finally:
                if installed:
                    loop.remove_signal_handler(signal.SIGINT)
    return ObserveResult(observer.records, observer.interrupted, time.perf_counter() - start,
                         warning)


def _load_label(opts: ObserveOptions) -> str:
    return (f"at most {opts.concurrency} in flight" if opts.concurrency
            else "open loop at the spec's arrival times")


def _install_sigint(loop, callback) -> bool:
    try:
        loop.add_signal_handler(signal.SIGINT, callback)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread / platform
        return False
    return True


def write_observation(opts: ObserveOptions, work: ObserveWorkload, result: ObserveResult):
    """Write the trace v2 of ``result`` into ``--trace-output``; return its TracePaths."""
    records = observed_records(result.records)
    header = {
        "mode": "real",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "warm_up_requests": 0,
        "workload_spec": work.workload_spec,
        "server": {"type": SERVER_TYPE, "model": opts.model},
    }
    observe = {
        "server_url": opts.server_url, "endpoint": ENDPOINTS[opts.endpoint],
        "concurrency": opts.concurrency, "max_retries": opts.max_retries,
        "retry_backoff_s": opts.retry_backoff_s, "timeout_s": opts.timeout_s,
        "seed": opts.seed, "interrupted": result.interrupted,
        "duration_us": int(round(result.duration_s * 1e6)),
        "retried_requests": int(np.sum(records.attempts > 1)),
    }
    return write_observed_trace(opts.trace_output, work.workload, records, header=header,
                                details=work.details, clients=work.clients,
                                slo_targets=work.slo_targets, horizon=work.horizon,
                                observe=observe)


def token_mismatches(work: ObserveWorkload, records: Sequence[RequestRecord]) -> dict:
    """Counts over ``ok`` requests: server prompt / completion token counts that differ from
    what was sent (n_in ids, n_out asked for), and requests without a usage report."""
    wl = work.workload
    out = {"prompt": 0, "completion": 0, "no_usage": 0}
    for i, r in enumerate(records):
        if r.status != "ok":
            continue
        if r.prompt_tokens < 0 and r.completion_tokens < 0:
            out["no_usage"] += 1
            continue
        out["prompt"] += int(r.prompt_tokens >= 0 and r.prompt_tokens != int(wl.n_in[i]))
        out["completion"] += int(r.completion_tokens >= 0
                                 and r.completion_tokens != max(int(wl.n_out[i]), 1))
    return out


def summary_line(work: ObserveWorkload, result: ObserveResult, trace_dir: str) -> str:
    """The one-line stderr summary: statuses, retries, token-count disagreements, output."""
    recs = result.records
    counts = Counter(r.status for r in recs)
    statuses = ", ".join(f"{counts[s]} {s}" for s in
                         ("ok", "error", "timeout", "rejected", "cancelled") if counts[s])
    mm = token_mismatches(work, recs)
    retried = sum(r.attempts > 1 for r in recs)
    head = "interrupted; partial trace" if result.interrupted else "trace"
    return (f"blis observe: {len(recs)} requests in {result.duration_s:.1f} s: {statuses}; "
            f"{retried} retried; server token counts differ from sent: prompt {mm['prompt']}, "
            f"completion {mm['completion']} (no usage report: {mm['no_usage']}); "
            f"{head} written to {trace_dir}")


def _check_output_dir(path: str) -> None:
    if path == "":
        raise InputError("--trace-output: must not be empty")
    check_output_dir(path, "--trace-output")


def run(opts: ObserveOptions) -> int:
    """Execute a parsed ``blis observe``: generate, probe, send, write, summarise.  Returns 0,
    or 130 when interrupted (the partial trace is written).  Raises InputError before anything
    is sent or written when the inputs or the server are unusable."""
    work = load_observe_workload(opts)
    _check_output_dir(opts.trace_output)
    result = asyncio.run(observe_async(opts, work))
    if result.warning:
        print(f"blis observe: warning: {result.warning}", file=sys.stderr)
    paths = write_observation(opts, work, result)
    print(summary_line(work, result, paths.directory), file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED if result.interrupted else EXIT_OK


def main(argv: Sequence[str] | None = None, prog: str = "blis") -> int:
    """``blis observe`` entry point: returns 0, 2 on bad input or an unusable server (one line
    ``blis: error: ...``, nothing written), 130 on Ctrl-C, argparse's status for ``--help``."""
    args = list(sys.argv[1:] if argv is None else argv)
    return run_subcommand(prog, lambda: parse_observe_args(args, prog=f"{prog} observe"), run)


__all__ = ["ObserveOptions", "ObserveWorkload", "Observer", "RequestRecord", "ObserveResult",
           "build_parser", "parse_observe_args", "load_observe_workload", "request_body",
           "parse_sse_line", "has_content", "observed_records", "probe_server", "observe_async",
           "write_observation", "token_mismatches", "summary_line", "run", "main",
           "backoff_delay", "normalize_server_url"]
