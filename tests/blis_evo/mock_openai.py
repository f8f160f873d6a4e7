"""A local mock OpenAI-compatible streaming server whose timing *is* the α/β serial server of
:mod:`blis_evo.stepmodel` (a test helper for ``blis observe`` and calibration).

``/v1/completions`` and ``/v1/chat/completions`` answer with server-sent events (``data: {...}``
chunks, one per output token, then a usage chunk when ``stream_options.include_usage`` is set,
then ``data: [DONE]``).  Timing, on the server's clock (µs since the server started):

* a request received at ``t`` joins the FIFO queue at ``t + α0 + α1·n_in``
  (:meth:`StepModel.queue_delay`);
* a single worker serves requests in queue-join order; the prefill ends at
  ``s + β0 + β1·n_in`` and the decode steps take ``β0 + β2`` each;
* the first token chunk is sent at ``prefill_end + α2``, token ``k`` (0-based) at
  ``first + k·(β0 + β2 + α2)``;
* like the simulator, the worker releases a request when its last step *starts*
  (``L = s`` for one output token, else ``prefill_end + (n_out − 2)(β0 + β2)``) and its steps
  end at ``E = prefill_end + (n_out − 1)(β0 + β2)``: the next request starts at its join time
  if it joins after ``L``, else at ``E``

which is :func:`blis_evo.stepmodel.serial_timeline` evaluated at the receipt times.  Every
deadline is absolute (``loop.call_at``), so scheduler jitter does not accumulate.

The prompt length ``n_in`` is the number of token ids (``prompt`` given as a list of ints) or of
whitespace-separated words (a string prompt, or the chat messages' contents); ``n_out`` is
``max_tokens`` (at least 1; ``ignore_eos`` is implied).

Fault injection (``fail_503``, ``drop_before_first``, ``drop_mid_stream``: fractions in [0, 1])
is decided per (prompt, attempt) by an RNG seeded with ``(seed, crc32(prompt), attempt)``, where
``attempt`` counts how often the server has seen that prompt, so the outcome is independent of
arrival order and a retry can succeed.  A 503 or a drop before the first chunk happens on
receipt, before queueing (it does not disturb the timeline); a mid-stream drop cuts the
connection after ``n_out // 2`` chunks (its slot on the worker stays reserved).

Usage::

    with MockOpenAIServer(StepModel((2000, 2, 500), (4000, 8, 1500))) as server:
        server.url        # http://127.0.0.1:<port>
        server.log        # one ServedRequest per received request, in receipt order
"""
from __future__ import annotations

import asyncio
import json
import threading
import time
import zlib
from dataclasses import dataclass, field

import numpy as np
from aiohttp import web

from blis_evo.stepmodel import StepModel


@dataclass
class ServedRequest:
    """What the mock did with one received request (times µs on the server clock; ``queued``
    ... ``done`` are the scheduled times, NaN when the request was not served)."""

    key: int
    attempt: int
    endpoint: str
    n_in: int
    n_out: int
    action: str  # "serve", "503", "drop_before", "drop_mid"
    received: float
    queued: float = float("nan")
    start: float = float("nan")
    first: float = float("nan")
    last: float = float("nan")
    released: float = float("nan")
    done: float = float("nan")
    chunks_sent: int = 0


@dataclass
class _State:
    released: float = float("-inf")
    done: float = float("-inf")
    seen: dict = field(default_factory=dict)
    log: list = field(default_factory=list)


class MockOpenAIServer:
    """The mock server as a context manager: starts on 127.0.0.1 at a free port in a background
    thread with its own event loop; ``url`` is its base URL and ``log`` the served requests."""

    def __init__(self, model: StepModel, *, model_name: str = "mock-model",
                 fail_503: float = 0.0, drop_before_first: float = 0.0,
                 drop_mid_stream: float = 0.0, seed: int = 0, streaming: bool = True):
        self.model = model
        self.model_name = model_name
        self.faults = (float(fail_503), float(drop_before_first), float(drop_mid_stream))
        self.seed = int(seed)
        self.streaming = streaming
        self.url = ""
        self._state = _State()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._t0 = 0.0

    # ---- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> "MockOpenAIServer":
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("mock OpenAI server did not start")
        return self

    def __exit__(self, *exc) -> None:
        loop = self._loop
        if loop is not None and self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        app = web.Application()
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        self._t0 = loop.time()
        ready.set()
        loop.run_forever()
        loop.close()

    # ---- introspection -----------------------------------------------------------------------

    @property
    def log(self) -> list[ServedRequest]:
        """A copy of the per-request log, in receipt order."""
        with self._lock:
            return list(self._state.log)

    def now_us(self) -> float:
        """The server clock: µs since the server started."""
        return (time.monotonic() - self._t0) * 1e6

    @staticmethod
    def prompt_key(prompt) -> int:
        """The fault-injection key of a prompt: crc32 of its canonical JSON text."""
        return zlib.crc32(json.dumps(prompt, separators=(",", ":")).encode("utf-8"))

    def fault(self, key: int, attempt: int) -> str:
        """The action for the ``attempt``-th receipt (0-based) of the prompt with ``key``."""
        u = np.random.default_rng([self.seed, key, attempt]).random()
        p503, pbefore, pmid = self.faults
        if u < p503:
            return "503"
        if u < p503 + pbefore:
            return "drop_before"
        if u < p503 + pbefore + pmid:
            return "drop_mid"
        return "serve"

    # ---- handlers ----------------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.model_name,
                                                                "object": "model"}]})

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        prompt = body.get("prompt", "")
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], int):
            n_in = len(prompt)
        elif isinstance(prompt, list):
            n_in = sum(len(p) if isinstance(p, list) else len(str(p).split()) for p in prompt)
        else:
            n_in = len(str(prompt).split())
        return await self._handle(request, body, "completions", prompt, n_in)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        msgs = body.get("messages") or []
        n_in = sum(len(str(m.get("content", "")).split()) for m in msgs)
        return await self._handle(request, body, "chat", msgs, n_in)

    async def _handle(self, request, body, endpoint, prompt, n_in):
        loop = asyncio.get_running_loop()
        received = loop.time()
        if body.get("model") != self.model_name:
            return web.json_response({"error": {"message": f"model {body.get('model')!r} "
                                                "does not exist"}}, status=404)
        n_out = max(int(body.get("max_tokens") or 1), 1)
        key = self.prompt_key(prompt)
        with self._lock:
            attempt = self._state.seen.get(key, 0)
            self._state.seen[key] = attempt + 1
            rec = ServedRequest(key, attempt, endpoint, n_in, n_out,
                                self.fault(key, attempt), self._us(received))
            self._state.log.append(rec)
        if rec.action == "503":
            return web.json_response({"error": {"message": "overloaded"}}, status=503)
        if rec.action == "drop_before":
            request.transport.abort()
            raise asyncio.CancelledError
        m = self.model
        await _sleep_until(loop, received + m.queue_delay(n_in) / 1e6)
        self._schedule(rec, received)
        if not self.streaming or not body.get("stream"):
            return await self._whole(rec, body, endpoint, loop)
        return await self._stream(request, rec, body, endpoint, loop)

    def _us(self, loop_time: float) -> float:
        return (loop_time - self._t0) * 1e6

    def _schedule(self, rec: ServedRequest, received: float) -> None:
        """Give ``rec`` the worker (called at its queue-join time, in join order): it starts
        at once if the previous request's last step had started, else when that step ends."""
        m = self.model
        queued = self._us(received) + m.queue_delay(rec.n_in)
        prefill_end_offset = m.prefill_step(rec.n_in)
        with self._lock:
            st = self._state
            start = queued if queued > st.released else st.done
            prefill_end = start + prefill_end_offset
            st.released = start if rec.n_out == 1 else \
                prefill_end + (rec.n_out - 2) * m.decode_step()
            st.done = prefill_end + (rec.n_out - 1) * m.decode_step()
            rec.released, rec.done = st.released, st.done
        rec.queued, rec.start = queued, start
        rec.first = prefill_end + m.alpha[2]
        rec.last = rec.first + (rec.n_out - 1) * m.token_gap()

    def _deadline(self, server_us: float) -> float:
        return self._t0 + server_us / 1e6

    async def _stream(self, request, rec, body, endpoint, loop):
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
        await resp.prepare(request)
        gap = self.model.token_gap()
        cut = rec.n_out // 2 if rec.action == "drop_mid" else -1
        for k in range(rec.n_out):
            if k == cut:
                request.transport.abort()
                return resp
            await _sleep_until(loop, self._deadline(rec.first + k * gap))
            final = k == rec.n_out - 1
            await resp.write(_sse(self._chunk(endpoint, k, final)))
            rec.chunks_sent = k + 1
        if (body.get("stream_options") or {}).get("include_usage"):
            await resp.write(_sse(self._usage(endpoint, rec)))
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def _whole(self, rec, body, endpoint, loop):
        await _sleep_until(loop, self._deadline(rec.last))
        text = "".join(f" t{k}" for k in range(rec.n_out))
        choice = ({"index": 0, "text": text, "finish_reason": "length"} if endpoint == "completions"
                  else {"index": 0, "message": {"role": "assistant", "content": text},
                        "finish_reason": "length"})
        rec.chunks_sent = 1
        return web.json_response({"id": "mock", "model": self.model_name, "choices": [choice],
                                  "usage": self._usage(endpoint, rec)["usage"]})

    def _chunk(self, endpoint: str, k: int, final: bool) -> dict:
        fin = "length" if final else None
        if endpoint == "completions":
            choice = {"index": 0, "text": f" t{k}", "logprobs": None, "finish_reason": fin}
            obj = "text_completion"
        else:
            delta = {"content": f" t{k}"}
            if k == 0:
                delta["role"] = "assistant"
            choice = {"index": 0, "delta": delta, "finish_reason": fin}
            obj = "chat.completion.chunk"
        return {"id": "mock", "object": obj, "created": 0, "model": self.model_name,
                "choices": [choice]}

    def _usage(self, endpoint: str, rec: ServedRequest) -> dict:
        return {"id": "mock", "object": "text_completion" if endpoint == "completions"
                else "chat.completion.chunk", "created": 0, "model": self.model_name,
                "choices": [], "usage": {"prompt_tokens": rec.n_in, "completion_tokens": rec.n_out,
                                         "total_tokens": rec.n_in + rec.n_out}}


def _sse(obj: dict) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode("utf-8") + b"\n\n"


async def _sleep_until(loop: asyncio.AbstractEventLoop, deadline: float) -> None:
    """Sleep until ``loop.time() >= deadline`` (an absolute deadline, no drift)."""
    if deadline <= loop.time():
        return
    fut = loop.create_future()
    handle = loop.call_at(deadline, lambda: fut.done() or fut.set_result(None))
    try:
        await fut
    finally:
        handle.cancel()
