"""The OpenAI-compatible engine: any server that speaks `/v1/chat/completions` and
`/v1/completions` (`vllm serve`, SGLang, `transformers serve`, llama.cpp's server, hosted APIs).

Chat messages go to the chat endpoint (the server applies the model's chat template), raw text
to the completions endpoint. Every sample is its own request with its own seed,
`sample_seed(seed, key, sample)`: servers that ignore `n` (transformers serve answers one choice)
and servers that honour it give the same records, and a sample does not depend on how many
requests were in flight or on which other prompts shared the call. vLLM and SGLang cache the
shared prompt prefix, so n requests cost about what one request with `n` does; a hosted API that
bills prompt tokens bills them n times (R1 prompts are short next to their completions).

Requests run `concurrency` at a time on threads over one pooled `httpx.Client`. A request that
meets 408/409/429/5xx, a dropped connection or its timeout is retried with exponential backoff
and jitter, waiting what `Retry-After` says when the server sends it; other 4xx answers are
errors at once, with the server's own message. The API key comes from an environment variable
and only ever travels in the Authorization header.
"""

from __future__ import annotations

import email.utils
import json
import math
import os
import queue
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar
from urllib.parse import urlsplit

from r1cli.engines import (
    DEFAULT_THINK_CLOSE, THINK_EXTEND, Completion, Generation, Prompt, SamplingParams, sample_seed, stop_end,
)
from r1cli.engines.options import EngineOptions, engine_batch_size, option
from r1cli.errors import BadOption, EngineUnavailable

DEFAULT_CONCURRENCY = 16
DEFAULT_TIMEOUT = 600.0  # seconds per request: a long reasoning completion on a busy server
DEFAULT_RETRIES = 5  # with 0.5 s doubling: gives a restarting server ~15-30 s to come back
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0
RETRY_AFTER_CAP = 300.0  # a Retry-After longer than this is taken as 300 s
RETRY_STATUS = frozenset({408, 409, 429})  # and every 5xx; as the OpenAI SDK retries

START_HINT = ("start the server (e.g. `vllm serve MODEL` or `transformers serve MODEL`) or fix --base-url; "
              "`r1 rollout -o FILE --resume` keeps the prompts it finished, and the same command continues it")


# ---- pure helpers ------------------------------------------------------------------------------


def api_root(base_url: str) -> str:
    """The API root that endpoint paths are appended to; a bare host gets `/v1`.

    >>> api_root("http://127.0.0.1:8000")
    'http://127.0.0.1:8000/v1'
    >>> api_root("https://api.example.com/v1/")
    'https://api.example.com/v1'
    """
    url = base_url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise EngineUnavailable(f"--base-url '{base_url}' is not an http(s) URL",
                                hint="give the server's API root, e.g. http://127.0.0.1:8000/v1")
    return url if parts.path not in ("", "/") else url + "/v1"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds, or an HTTP date); None if absent or bad.

    >>> parse_retry_after("3")
    3.0
    >>> parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0)
    10.0
    >>> parse_retry_after("soon") is None
    True
    """
    if value is None or not value.strip():
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


def backoff_delay(attempt: int, *, retry_after: float | None, rand: float,
                  base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP) -> float:
    """Seconds before retry number `attempt` (0-based): the server's Retry-After when it sent one,
    else "equal jitter" exponential backoff, between half and all of min(cap, base·2^attempt), so
    clients that failed together do not come back together. `rand` is uniform in [0, 1).

    >>> backoff_delay(0, retry_after=None, rand=0.0), backoff_delay(3, retry_after=None, rand=0.999)
    (0.25, 3.998)
    >>> backoff_delay(10, retry_after=None, rand=0.0), backoff_delay(0, retry_after=7.0, rand=0.5)
    (15.0, 7.0)
    """
    if retry_after is not None:
        return min(retry_after, RETRY_AFTER_CAP)
    ceiling = min(cap, base * 2**attempt)
    return ceiling / 2 + rand * ceiling / 2


def retryable(status: int) -> bool:
    """Whether an HTTP status is worth retrying (rate limits, timeouts, conflicts, server errors)."""
    return status in RETRY_STATUS or status >= 500


def request_body(prompt: Prompt, params: SamplingParams, seed: int, model: str | None) -> tuple[str, dict[str, Any]]:
    """(endpoint path, JSON body) of one sample's request.

    `top_k`, `ignore_eos` and `continue_final_message` (for chat prompts that end with a
    prefilled assistant message) are not OpenAI parameters (vLLM and SGLang accept them, strict
    servers refuse them), so they are sent only when they are needed. llama.cpp reads `seed` as a
    32-bit number, so the per-sample seed is kept below 2^31.
    """
    body: dict[str, Any] = {}
    if model:
        body["model"] = model
    if isinstance(prompt, str):
        path = "/completions"
        body["prompt"] = prompt
    else:
        path = "/chat/completions"
        body["messages"] = [dict(m) for m in prompt]
        if prompt and prompt[-1]["role"] == "assistant":  # a prefill: continue it (vLLM, SGLang extension)
            body.update(add_generation_prompt=False, continue_final_message=True)
    body.update(max_tokens=params.max_new_tokens, temperature=params.temperature, top_p=params.top_p,
                seed=seed & 0x7FFF_FFFF)
    if params.stop:
        body["stop"] = list(params.stop)
    if params.top_k > 0:
        body["top_k"] = params.top_k
    if params.ignore_eos:
        body["ignore_eos"] = True
    return path, body


def continued(prompt: Prompt, text: str) -> Prompt:
    """The prompt with `text` written after it, for a request that continues it: appended to a
    text prompt, or to the final assistant message of a chat (which is then continued).

    >>> continued("Q: 2+2? A: <think>", "four")
    'Q: 2+2? A: <think>four'
    >>> continued([{"role": "user", "content": "Hi"}], "<think>x")[-1]
    {'role': 'assistant', 'content': '<think>x'}
    """
    if not text:
        return prompt
    if isinstance(prompt, str):
        return prompt + text
    messages = [dict(m) for m in prompt]
    if messages and messages[-1]["role"] == "assistant":
        messages[-1]["content"] += text
    else:
        messages.append({"role": "assistant", "content": text})
    return messages


@dataclass(frozen=True)
class Answer:
    """One sample as the server answered it; token counts are None when it sent no `usage`."""

    text: str
    finish_reason: str
    prompt_tokens: int | None
    completion_tokens: int | None
    model: str | None = None
    think_tokens: int | None = None  # with a thinking budget / --min-think (two-request path)
    answer_tokens: int | None = None
    forced: str | None = None


def parse_answer(data: Any, *, chat: bool, stop: Sequence[str] = ()) -> Answer:
    """The first choice of a (chat) completion response, as r1 records it.

    A completion that met a stop string ends with it, as in every r1 engine (`restore_stop`).
    A chat answer whose reasoning the server split off (`reasoning_content`, as vLLM does with a
    reasoning parser) gets it back in front as `<think>…</think>`, the R1 format.
    `finish_reason` is `length` when the server says so, else `stop`.
    """
    try:
        choice = data["choices"][0]
        if chat:
            message = choice["message"]
            text = message.get("content") or ""
            reasoning = message.get("reasoning_content") or message.get("reasoning")
            if reasoning:
                text = f"<think>\n{reasoning}\n</think>\n{text}"
        else:
            text = choice["text"] or ""
        raw_reason = choice.get("finish_reason")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise ValueError("no choices[0] with a " + ("message" if chat else "text")) from None
    if not isinstance(text, str):
        raise ValueError("the completion text is not a string")  # noqa: TRY004 - one error type for a bad answer
    finish = "length" if raw_reason == "length" else "stop"
    end = stop_end(text, stop)
    if end is not None:
        text, finish = text[:end], "stop"
    elif stop and finish == "stop":
        text += restore_stop(choice, stop)
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    model = data.get("model") if isinstance(data.get("model"), str) else None
    return Answer(text=text, finish_reason=finish, prompt_tokens=_count(usage.get("prompt_tokens")),
                  completion_tokens=_count(usage.get("completion_tokens")), model=model)


EOS_REASONS = frozenset({"eos", "eos_token"})  # finish reasons that name an end-of-sequence token (TGI)


def restore_stop(choice: Mapping[str, Any], stop: Sequence[str]) -> str:
    """The stop string a server cut off the end of a choice that finished with "stop" ("" if none).

    Servers leave the matched stop string out of the text (OpenAI's API, vLLM and SGLang by
    default, llama.cpp); r1's completions keep it. Asking for it back is no way out: vLLM's
    `include_stop_str_in_output` is an extra field that strict servers refuse (`transformers
    serve` answers 422, OpenAI's API 400). Instead, in order:

    - the server names the match: vLLM's `stop_reason` or SGLang's `matched_stop` is the stop
      string, or a token id / null when the completion ended at EOS or a stop token (nothing to
      restore). Exact.
    - the finish reason tells EOS from a stop string (TGI: `eos_token` / `stop_sequence`). Exact
      with one stop string; with several, which one matched is unknown and nothing is restored.
    - a plain "stop" and nothing else (OpenAI's API, llama.cpp): with exactly one stop string,
      it is restored. Such a server also says "stop" at EOS, so a completion that ended there
      without writing the stop string gets it too: with `--stop </answer>` the stop string is
      there because the model goes on after its answer, and a close it never wrote is the rarer
      error than every stopped answer losing its close. With several stop strings, nothing.

    >>> restore_stop({"finish_reason": "stop", "stop_reason": "</answer>"}, ("</answer>", "User:"))
    '</answer>'
    >>> restore_stop({"finish_reason": "stop", "stop_reason": None}, ("</answer>",))
    ''
    >>> restore_stop({"finish_reason": "stop"}, ("</answer>",)), restore_stop({"finish_reason": "stop"}, ("a", "b"))
    ('</answer>', '')
    """
    for key in ("stop_reason", "matched_stop"):  # vLLM, SGLang
        if key in choice:
            matched = choice[key]
            return matched if isinstance(matched, str) and matched in stop else ""
    reason = choice.get("finish_reason")
    if reason in EOS_REASONS or len(stop) != 1:
        return ""
    return stop[0] if reason in ("stop", "stop_sequence") else ""


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def error_detail(text: str) -> str:
    """The server's own error message out of an error body (OpenAI, FastAPI or plain text).

    >>> error_detail('{"error": {"message": "model not found"}}')
    'model not found'
    >>> error_detail('{"detail": "Unexpected fields"}')
    'Unexpected fields'
    """
    try:
        data = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:300]
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
        for key in ("detail", "message", "error"):
            if data.get(key):
                return str(data[key])[:300]
    return " ".join(text.split())[:300]


def api_key(env_name: str | None) -> str | None:
    """The API key from the variable `env_name` (which must be set), else from OPENAI_API_KEY if set."""
    if env_name is None:
        return os.environ.get(DEFAULT_API_KEY_ENV) or None
    value = os.environ.get(env_name)
    if not value:
        raise EngineUnavailable(f"--api-key-env {env_name}: the environment variable {env_name} is not set or empty",
                                hint=f"export {env_name}=… (the key is read from there and never printed)")
    return value


# ---- the engine ------------------------------------------------------------------------------


class _Aborted(Exception):
    """Another request of the same call failed: stop this one's retries."""


@dataclass(frozen=True, kw_only=True)
class OpenAIOptions(EngineOptions):
    engine: ClassVar[str] = "openai"

    # sequences per generate() call: enough to keep every request slot busy for a while
    batch_size: int | None = engine_batch_size(None, default_text="max(64, --concurrency)")
    # where the server is, not what it serves (the records name the served model): a restarted server
    # at another address continues a run
    base_url: str | None = option(None, metavar="URL", required="e.g. http://127.0.0.1:8000/v1", output=False,
                                  help="the server's API root, e.g. http://127.0.0.1:8000/v1; a bare host gets /v1")
    api_key_env: str | None = option(None, metavar="VAR", output=False, default_text=f"{DEFAULT_API_KEY_ENV} when set",
                                     help="environment variable holding the API key; the key itself is never printed")
    concurrency: int = option(DEFAULT_CONCURRENCY, min=1, output=False, help="requests in flight at once")
    request_timeout: float = option(DEFAULT_TIMEOUT, min=0.001, metavar="SECONDS", output=False,
                                    help="give up on a request after this long, then retry it")
    max_retries: int = option(DEFAULT_RETRIES, min=0, output=False,
                              help="retries of a request on 429, 5xx, timeouts and dropped connections, with "
                                   "exponential backoff and Retry-After")

    def check(self) -> None:
        try:
            api_root(self.base_url or "")
        except EngineUnavailable as exc:
            raise BadOption(exc.message, exc.hint, flag="--base-url") from None


class OpenAIEngine:
    name = "openai"
    summary = "an OpenAI-compatible server at --base-url"
    Options = OpenAIOptions

    def __init__(self, model: str | None = None, options: OpenAIOptions | Any = None, **values: Any) -> None:
        """`options`: OpenAIOptions or a mapping of its fields; keywords (base_url=…, concurrency=…) add to it."""
        import httpx

        opts = OpenAIOptions.of(options, **values)
        self.options = opts
        self.url = api_root(opts.base_url or "")
        self.model = model or None
        self.model_name = model or ""  # without -m: the name the server reports, from its first answer
        self.concurrency = concurrency = opts.concurrency
        self.request_timeout = request_timeout = opts.request_timeout
        self.max_retries = opts.max_retries
        self.batch_size = max(opts.batch_size or 64, concurrency)
        self._api_key_env = opts.api_key_env or DEFAULT_API_KEY_ENV
        key = api_key(opts.api_key_env)
        self._client = httpx.Client(
            headers={"Authorization": f"Bearer {key}"} if key else {},
            timeout=httpx.Timeout(request_timeout, connect=min(request_timeout, 30.0)),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self._call = threading.local()  # .abort: the Event of the generate() call a worker thread serves
        self._rng = random.Random()
        self._tokenizer: Any = None
        self._tokenizer_lock = threading.Lock()
        self.retries = 0  # requests retried, over the engine's life

    def has_chat_template(self) -> bool:
        return True  # the server applies the model's chat template to messages

    def close(self) -> None:
        self._client.close()

    # -- generation ------------------------------------------------------------------------

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams, *,
                 keys: Sequence[str] | None = None) -> list[Generation]:
        if keys is None:
            keys = [str(i) for i in range(len(prompts))]
        tasks = [(i, s) for i in range(len(prompts)) for s in range(params.n)]
        answers = self._run(tasks, lambda i, s: self.sample(prompts[i], params, sample_seed(params.seed, keys[i], s)))
        out = []
        for i, prompt in enumerate(prompts):
            mine = [answers[(i, s)] for s in range(params.n)]
            prompt_tokens = next((a.prompt_tokens for a in mine if a.prompt_tokens is not None), None)
            if prompt_tokens is None:
                prompt_tokens = self._count_prompt(prompt)
            completions = [
                Completion(text=a.text, finish_reason=a.finish_reason,
                           completion_tokens=a.completion_tokens if a.completion_tokens is not None
                           else self._count_text(a.text),
                           think_tokens=a.think_tokens, answer_tokens=a.answer_tokens, forced=a.forced)
                for a in mine
            ]
            out.append(Generation(prompt_tokens=prompt_tokens, completions=completions))
        return out

    def sample(self, prompt: Prompt, params: SamplingParams, seed: int) -> Answer:
        """One completion of one prompt (one request, retried as needed; two or more with a
        thinking budget: `sample_thinking`)."""
        if params.tracks_thinking:
            return self.sample_thinking(prompt, params, seed)
        path, body = request_body(prompt, params, seed, self.model)
        data = self._post(path, body)
        try:
            answer = parse_answer(data, chat=path == "/chat/completions", stop=params.stop)
        except ValueError as exc:
            raise EngineUnavailable(f"{self.url}{path}: unexpected answer ({exc}): {json.dumps(data)[:200]}",
                                    hint="--base-url must point at an OpenAI-compatible API root (…/v1)") from None
        if not self.model_name and answer.model:
            self.model_name = answer.model
        return answer

    def sample_thinking(self, prompt: Prompt, params: SamplingParams, seed: int) -> Answer:
        """Budget forcing over the API: a request of at most `think_budget` tokens; if the think
        block is still open, a second request continues from the forced close (prompt + text +
        `</think>…`: the completions endpoint, or a continued final assistant message for chat).

        A `</think>` before `min_think` tokens is cut off and the text continues after "Wait"
        (another request). Think tokens are counted with the model's tokenizer from the start of
        the completion (a prompt that ends in `<think>` puts the whole first request inside the
        block). Each request's seed is derived from the sample's, so a sample stays reproducible.
        """
        plain = replace(params, think_budget=None, min_think=None, answer_budget=None)
        budget = params.think_budget or params.max_new_tokens
        close = params.think_close or DEFAULT_THINK_CLOSE
        text, used, forced, think, first = "", 0, None, None, None
        for turn in range(64):  # each extension adds "Wait"; 64 requests bound a stubborn model
            want = min(budget, params.max_new_tokens) - used
            answer = self._sample_once(continued(prompt, text), replace(plain, max_new_tokens=max(1, want)),
                                       seed + turn)
            first = first or answer
            text += answer.text
            used += answer.completion_tokens if answer.completion_tokens is not None else self._count_text(answer.text)
            cut = text.find("</think>")
            if cut != -1:
                before = self._count_text(text[:cut])
                if params.min_think is not None and before < params.min_think and used < params.max_new_tokens:
                    text = text[:cut] + THINK_EXTEND
                    used, forced = before + self._count_text(THINK_EXTEND), "extend"
                    continue
                think = before
                break
            if answer.finish_reason != "length" or used >= params.max_new_tokens:  # ended inside the block
                return replace(answer, text=text, completion_tokens=used, prompt_tokens=first.prompt_tokens,
                               think_tokens=used, answer_tokens=0, forced=forced)
            if used >= budget:
                text += close
                think, forced = used, "close"
                used += self._count_text(close)
                break
        finish = answer.finish_reason
        allowance = params.answer_budget if params.answer_budget is not None else params.max_new_tokens
        written = 0  # answer tokens already in `text`
        if forced != "close" and params.answer_budget is not None and "</think>" in text:  # closed by the model
            after = text.find("</think>") + len("</think>")
            written = self._count_text(text[after:])
            if written >= allowance:  # the first request's answer ran past the allowance: cut it there
                text = text[:after] + self._head(text[after:], allowance)
                used, written, finish = used - (written - allowance), allowance, "length"
        want = min(params.max_new_tokens - used, allowance - written)
        if want > 0 and (forced == "close" or finish == "length"):
            rest = self._sample_once(continued(prompt, text), replace(plain, max_new_tokens=want), seed + 1000)
            text += rest.text
            used += rest.completion_tokens if rest.completion_tokens is not None else self._count_text(rest.text)
            finish = rest.finish_reason
        elif used >= params.max_new_tokens or written >= allowance:
            finish = "length"
        think = think if think is not None else used
        return Answer(text=text, finish_reason=finish, prompt_tokens=first.prompt_tokens, completion_tokens=used,
                      model=first.model, think_tokens=think, answer_tokens=max(0, used - think - (
                          self._count_text(close) if forced == "close" else 0)), forced=forced)

    def _sample_once(self, prompt: Prompt, params: SamplingParams, seed: int) -> Answer:
        return self.sample(prompt, params, seed & ((1 << 63) - 1))

    def _run(self, tasks: list[tuple[int, int]], work: Callable[[int, int], Answer]) -> dict[tuple[int, int], Answer]:
        """Run `work` on every task, `concurrency` at a time; the first failure stops the rest.

        Daemon threads: after a failure the command exits at once instead of waiting for
        requests still in flight (up to --request-timeout each).
        """
        pending: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()
        for task in tasks:
            pending.put(task)
        done: queue.SimpleQueue[tuple[tuple[int, int], Answer | BaseException]] = queue.SimpleQueue()
        abort = threading.Event()  # per call: threads of a failed call never resume for a later one

        def worker() -> None:
            self._call.abort = abort
            while not abort.is_set():
                try:
                    task = pending.get_nowait()
                except queue.Empty:
                    return
                try:
                    done.put((task, work(*task)))
                except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                    done.put((task, exc))
                    return

        for _ in range(min(self.concurrency, len(tasks))):
            threading.Thread(target=worker, daemon=True, name="r1-openai").start()
        results: dict[tuple[int, int], Answer] = {}
        try:
            while len(results) < len(tasks):
                try:
                    task, result = done.get(timeout=0.5)  # a timeout keeps Ctrl-C responsive
                except queue.Empty:
                    continue
                if isinstance(result, BaseException):
                    if isinstance(result, _Aborted):
                        continue
                    raise result
                results[task] = result
        finally:
            if len(results) < len(tasks):
                abort.set()
        return results

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        import httpx

        url = self.url + path
        abort = getattr(self._call, "abort", None) or threading.Event()
        failure = ""
        for attempt in range(self.max_retries + 1):
            if abort.is_set():
                raise _Aborted
            retry_after = None
            try:
                response = self._client.post(url, json=body)
            except httpx.TimeoutException:
                failure = f"no answer within {self.request_timeout:g} s (--request-timeout)"
            except httpx.TransportError as exc:
                failure = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if response.status_code < 300:
                    try:
                        return response.json()
                    except ValueError:
                        failure = f"HTTP {response.status_code} with a body that is not JSON"
                elif retryable(response.status_code):
                    failure = f"HTTP {response.status_code}: {error_detail(response.text)}"
                    retry_after = parse_retry_after(response.headers.get("retry-after"))
                else:
                    raise self._refused(url, response)
            if attempt == self.max_retries:
                break
            self.retries += 1
            if self._wait(backoff_delay(attempt, retry_after=retry_after, rand=self._rng.random()), abort):
                raise _Aborted
        raise EngineUnavailable(f"the server at {url} failed: {failure} (gave up after {self.max_retries} "
                                f"retr{'y' if self.max_retries == 1 else 'ies'})",
                                hint=("lower --concurrency or raise --max-retries; " if "429" in failure else "")
                                + START_HINT)

    def _wait(self, seconds: float, abort: threading.Event) -> bool:
        """Sleep before a retry; True when the call was aborted meanwhile."""
        return abort.wait(seconds)

    def _refused(self, url: str, response: Any) -> EngineUnavailable:
        status, detail = response.status_code, error_detail(response.text)
        message = f"the server at {url} refused the request (HTTP {status}): {detail}"
        if status in (401, 403):
            hint = f"check the API key in ${self._api_key_env} (--api-key-env names the variable)"
        elif status == 404:
            hint = "check --base-url (the API root, usually ending in /v1) and -m (a name the server serves)"
        elif "top_k" in detail:
            hint = "--top-k is not an OpenAI parameter and this server refuses it: use --top-k 0"
        elif "model" in detail.lower() or "pinned" in detail.lower():
            hint = "-m must be a name the server serves; leave -m out for a server that serves one model"
        else:
            hint = "check the sampling flags against what this server supports"
        return EngineUnavailable(message, hint=hint)

    # -- token counts when the server sends no `usage` -------------------------------------

    def _tokenizer_or_fail(self) -> Any:
        with self._tokenizer_lock:
            if self._tokenizer is None:
                from r1cli.errors import R1Error
                from r1cli.models import load_tokenizer

                if not self.model:
                    raise EngineUnavailable(f"the server at {self.url} sends no token counts (`usage`)",
                                            hint="give -m (the served model's hub id or local folder) so r1 can "
                                                 "count tokens with its tokenizer")
                try:
                    self._tokenizer = load_tokenizer(self.model)
                except R1Error as exc:
                    raise EngineUnavailable(f"the server at {self.url} sends no token counts (`usage`), and the "
                                            f"tokenizer of -m {self.model} cannot be loaded: {exc.message}",
                                            hint="give -m as the served model's hub id or local folder") from None
            return self._tokenizer

    def _head(self, text: str, tokens: int) -> str:
        """The first `tokens` tokens of `text` (the model's tokenizer)."""
        tokenizer = self._tokenizer_or_fail()
        return tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"][:tokens])

    def _count_text(self, text: str) -> int:
        return len(self._tokenizer_or_fail()(text, add_special_tokens=False)["input_ids"])

    def _count_prompt(self, prompt: Prompt) -> int:
        tokenizer = self._tokenizer_or_fail()
        if isinstance(prompt, str):
            return len(tokenizer(prompt, add_special_tokens=True)["input_ids"])
        prefilled = prompt[-1]["role"] == "assistant"
        text = tokenizer.apply_chat_template(prompt, add_generation_prompt=not prefilled,
                                             continue_final_message=prefilled, tokenize=False)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])
