"""The vLLM engine: an in-process `vllm.LLM` (continuous batching, paged KV cache, tensor
parallelism), for GPU machines with `pip install 'r1cli[vllm]'`.

Written against vLLM's documented offline API: `LLM(model, tensor_parallel_size,
gpu_memory_utilization, dtype, seed)`, `SamplingParams(n, temperature, top_p, top_k, seed,
max_tokens, stop, include_stop_str_in_output, ignore_eos)`, `LLM.generate` for text and
`LLM.chat` for messages (vLLM applies the model's chat template), each returning one
`RequestOutput` per prompt with
`.prompt_token_ids` and `.outputs[j].text / .token_ids / .finish_reason`.

Each sample is its own request with its own seed, `sample_seed(seed, key, sample)`, as in the hf
and openai engines: a prompt's samples do not depend on the batch or on n. vLLM's prefix cache
computes the shared prompt once. Only the pure parts (parameter mapping, output conversion) are
tested without a GPU; see the README for where the engine was verified.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from r1cli.engines import DEFAULT_MODEL, Completion, Generation, Prompt, SamplingParams, sample_seed
from r1cli.engines.options import DTYPES, EngineOptions, dtype_option, engine_batch_size, option
from r1cli.errors import EngineUnavailable

INSTALL_HINT = ("pip install 'r1cli[vllm]' (Linux with a CUDA GPU); or use --engine hf, or --engine openai "
                "with a `vllm serve` server")
DEFAULT_BATCH = 512  # sequences per LLM call: vLLM schedules them itself; bigger calls keep it busier



@dataclass(frozen=True, kw_only=True)
class VLLMOptions(EngineOptions):
    engine: ClassVar[str] = "vllm"

    batch_size: int = engine_batch_size(DEFAULT_BATCH)
    dtype: str | None = dtype_option("the checkpoint's")
    tensor_parallel_size: int = option(1, min=1, help="GPUs one model is split over")
    gpu_memory_utilization: float = option(0.9, min=0.01, max=1.0, help="share of GPU memory for weights and KV cache")


def vllm_dtype(dtype: str | None) -> str:
    """vLLM's name for a dtype (`--dtype`); None means the checkpoint's own ("auto").

    >>> vllm_dtype("bf16"), vllm_dtype(None)
    ('bfloat16', 'auto')
    """
    if dtype is None:
        return "auto"
    try:
        return DTYPES[dtype.lower()]
    except KeyError:
        raise EngineUnavailable(f"--dtype {dtype}: not a dtype vLLM takes",
                                hint="use auto, bfloat16, float16 or float32") from None


def sampling_kwargs(params: SamplingParams, seed: int) -> dict[str, Any]:
    """Keyword arguments of `vllm.SamplingParams` for one sample (n=1) with its own seed.

    vLLM's top-k "off" was -1 before 0.8 and is "0 or -1" since; -1 works in every version.

    >>> sampling_kwargs(SamplingParams(max_new_tokens=8, stop=("</answer>",)), seed=7)["stop"]
    ['</answer>']
    """
    return {
        "n": 1,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": params.top_k if params.top_k > 0 else -1,
        "seed": seed,
        "max_tokens": params.max_new_tokens,
        "stop": list(params.stop) or None,
        "include_stop_str_in_output": bool(params.stop),  # the text keeps the stop string, as in every engine
        "ignore_eos": params.ignore_eos,
    }


def prompt_kind(prompt: Prompt) -> str:
    """How a prompt is sent: "text" (LLM.generate), "chat", or "prefilled" (chat ending with an
    assistant message, which LLM.chat continues with `continue_final_message`).

    >>> prompt_kind("2+2?"), prompt_kind([{"role": "user", "content": "2+2?"}])
    ('text', 'chat')
    >>> prompt_kind([{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "<think>"}])
    'prefilled'
    """
    if isinstance(prompt, str):
        return "text"
    return "prefilled" if prompt and prompt[-1]["role"] == "assistant" else "chat"


def to_completion(output: Any) -> Completion:
    """One `CompletionOutput` as r1's Completion (its text ends with the stop string it met:
    `include_stop_str_in_output`); `abort` (the engine dropped the request) is an error, not a
    short completion."""
    reason = getattr(output, "finish_reason", None)
    if reason == "abort":
        raise EngineUnavailable("vLLM aborted a request (finish_reason 'abort')",
                                hint="usually out of memory or an engine shutdown: lower --batch-size or "
                                     "--gpu-memory-utilization and rerun with -o FILE --resume")
    return Completion(text=output.text, finish_reason="length" if reason == "length" else "stop",
                      completion_tokens=len(output.token_ids))


def to_generations(request_outputs: Sequence[Any], n: int) -> list[Generation]:
    """Group one-sample `RequestOutput`s (prompt-major: prompt 0's n samples first) per prompt."""
    if len(request_outputs) % n:
        raise EngineUnavailable(f"vLLM returned {len(request_outputs)} outputs, not a multiple of n={n}")
    out = []
    for start in range(0, len(request_outputs), n):
        group = request_outputs[start : start + n]
        completions = []
        for ro in group:
            if not ro.outputs:
                raise EngineUnavailable("vLLM returned a request without outputs")
            completions.append(to_completion(ro.outputs[0]))
        out.append(Generation(prompt_tokens=len(group[0].prompt_token_ids or ()), completions=completions))
    return out


def import_vllm() -> Any:
    """The vllm module, or EngineUnavailable with the install command."""
    try:
        import vllm
    except ImportError as exc:
        missing = getattr(exc, "name", None) == "vllm"
        raise EngineUnavailable("vLLM is not installed" if missing else f"vLLM cannot be imported: {exc}",
                                hint=INSTALL_HINT) from None
    return vllm


class VLLMEngine:
    name = "vllm"
    summary = "in-process vLLM, CUDA GPU"
    Options = VLLMOptions

    def __init__(self, model: str | None = None, options: VLLMOptions | Any = None, *, seed: int = 0,
                 **values: Any) -> None:
        """`options`: VLLMOptions or a mapping of its fields; keywords add to it. `seed`: vLLM's own
        (each request carries its sample's seed)."""
        from r1cli.models import check_spec, model_name, resolve_model

        opts = VLLMOptions.of(options, **values)
        model = model or DEFAULT_MODEL
        check_spec(model)
        vllm = import_vllm()
        self._vllm = vllm
        self.options = opts
        self.model_name = model_name(model)
        self.batch_size = opts.batch_size
        self.llm = vllm.LLM(model=resolve_model(model), tensor_parallel_size=opts.tensor_parallel_size,
                            gpu_memory_utilization=opts.gpu_memory_utilization, dtype=vllm_dtype(opts.dtype),
                            seed=seed)
        self.tokenizer = self.llm.get_tokenizer()

    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def generate(self, prompts: Sequence[Prompt], params: SamplingParams, *,
                 keys: Sequence[str] | None = None) -> list[Generation]:
        if keys is None:
            keys = [str(i) for i in range(len(prompts))]
        if params.tracks_thinking:
            return self.generate_thinking(prompts, params, keys=keys)
        # one request per (prompt, sample); text prompts, chat prompts, and chat prompts that end
        # with an assistant message (a prefill, continued rather than closed) go to their own call
        requests = [(i, s) for i in range(len(prompts)) for s in range(params.n)]
        outputs: dict[tuple[int, int], Any] = {}
        for kind in ("text", "chat", "prefilled"):
            mine = [(i, s) for i, s in requests if prompt_kind(prompts[i]) == kind]
            if not mine:
                continue
            sampling = [self._vllm.SamplingParams(**sampling_kwargs(params, sample_seed(params.seed, keys[i], s)))
                        for i, s in mine]
            inputs = [prompts[i] for i, _ in mine]
            if kind == "text":
                results = self.llm.generate(inputs, sampling, use_tqdm=False)
            else:
                prefilled = kind == "prefilled"
                results = self.llm.chat(inputs, sampling, use_tqdm=False, add_generation_prompt=not prefilled,
                                        continue_final_message=prefilled)
            if len(results) != len(mine):
                raise EngineUnavailable(f"vLLM returned {len(results)} outputs for {len(mine)} requests")
            outputs.update(zip(mine, results))
        return to_generations([outputs[r] for r in requests], params.n)

    def generate_thinking(self, prompts: Sequence[Prompt], params: SamplingParams, *,
                          keys: Sequence[str]) -> list[Generation]:
        """Budget forcing in two `LLM.generate` calls: every sample thinks up to `think_budget`
        tokens (max_tokens); samples whose text has no `</think>` and ran out get the close
        appended and continue in a second call (prompt + text + close, max_tokens = what is left).

        Chat prompts are rendered to text with the chat template first, so both phases are plain
        text continuations. `--min-think` needs the close to be taken back mid-decode, which the
        offline API does not offer: it is refused here (use the hf engine).
        """
        from dataclasses import replace

        from r1cli.engines import DEFAULT_THINK_CLOSE

        if params.min_think is not None:
            raise EngineUnavailable("--min-think is not available with --engine vllm",
                                    hint="use --engine hf, which replaces an early </think> by 'Wait' as it decodes")
        budget = min(params.think_budget or params.max_new_tokens, params.max_new_tokens)
        close = params.think_close or DEFAULT_THINK_CLOSE
        texts = [p if isinstance(p, str) else self.tokenizer.apply_chat_template(
            p, add_generation_prompt=p[-1]["role"] != "assistant", continue_final_message=p[-1]["role"] == "assistant",
            tokenize=False) for p in prompts]
        requests = [(i, s) for i in range(len(prompts)) for s in range(params.n)]
        seeds = {r: sample_seed(params.seed, keys[r[0]], r[1]) for r in requests}
        first = self.llm.generate([texts[i] for i, _ in requests],
                                  [self._vllm.SamplingParams(**sampling_kwargs(replace(params, max_new_tokens=budget),
                                                                               seeds[r])) for r in requests],
                                  use_tqdm=False)
        close_tokens = len(self.tokenizer(close, add_special_tokens=False)["input_ids"])
        allowance = params.answer_budget if params.answer_budget is not None else params.max_new_tokens
        state = {}
        todo: dict[tuple[int, int], int] = {}  # sample → max_tokens of its second call
        for r, out in zip(requests, first):
            o = out.outputs[0]
            used = len(o.token_ids)
            if "</think>" not in o.text and o.finish_reason == "length" and used + close_tokens < params.max_new_tokens:
                state[r] = (out, o.text + close, used, used, "close")
                todo[r] = min(params.max_new_tokens - used - close_tokens, allowance)
            else:
                cut = o.text.find("</think>")
                think = used if cut == -1 else len(self.tokenizer(o.text[:cut], add_special_tokens=False)["input_ids"])
                state[r] = (out, o.text, used, think, None)
                if cut == -1:
                    continue
                after = cut + len("</think>")
                answer = self.tokenizer(o.text[after:], add_special_tokens=False)["input_ids"]
                if len(answer) >= allowance:  # the answer ran past --answer-budget in the first call: cut it
                    text = o.text[:after] + self.tokenizer.decode(answer[:allowance])
                    state[r] = (out, text, used - (len(answer) - allowance), think, None, "length")
                elif o.finish_reason == "length" and used < params.max_new_tokens:
                    # closed by itself within the budget: the answer goes on
                    todo[r] = min(params.max_new_tokens - used, allowance - len(answer))
        if todo:
            more = self.llm.generate(
                [texts[r[0]] + state[r][1] for r in todo],
                [self._vllm.SamplingParams(**sampling_kwargs(replace(params, max_new_tokens=room), seeds[r] ^ 1))
                 for r, room in todo.items()], use_tqdm=False)
            for r, out in zip(todo, more):
                first_out, text, used, think, forced = state[r]
                o = out.outputs[0]
                extra = close_tokens if forced else 0
                state[r] = (first_out, text + o.text, used + extra + len(o.token_ids), think, forced, o.finish_reason)
        gens = []
        for i in range(len(prompts)):
            completions = []
            for s in range(params.n):
                entry = state[(i, s)]
                out, text, used, think, forced = entry[:5]
                reason = entry[5] if len(entry) > 5 else out.outputs[0].finish_reason
                completions.append(Completion(text=text, finish_reason="length" if reason == "length" else "stop",
                                              completion_tokens=used, think_tokens=think,
                                              answer_tokens=max(0, used - think - (close_tokens if forced else 0)),
                                              forced=forced))
            gens.append(Generation(prompt_tokens=len(state[(i, 0)][0].prompt_token_ids), completions=completions))
        return gens
