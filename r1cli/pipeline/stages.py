"""The stages of the data pipeline as library functions: rollout, score, select (reject-sample).

Each reads a source, writes a sink (stdout, or a file with its manifest, `r1cli.manifest`),
resumes where a file allows it, and returns its counts. `r1 rollout`, `r1 score` and
`r1 reject-sample` are thin calls of these, and `r1 distill` runs the very same three:

    from r1cli.pipeline.stages import ScoreJob, Source, score_file
    result = score_file(Source("rollouts.jsonl"), "scored.jsonl", ScoreJob(rewards=("accuracy",)), resume=True)
    result.stats.records, result.done

What a resume checks, per stage (besides the manifest's settings and input fingerprint):
rollout, that every kept prompt has samples 0..n-1 and that their `model` is the engine's;
score, that the input's first records are the output's records (id, sample, completion).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from r1cli.engines import Engine, SamplingParams
from r1cli.errors import ResumeMismatch
from r1cli.manifest import Spec
from r1cli.pipeline.clock import BusyClock
from r1cli.reject_sampling import SelectPolicy, SelectStats
from r1cli.rollout import RolloutStats
from r1cli.scoring import ScoreStats
from r1cli.sink import Sink, open_output
from r1cli.sources import Located

# `progress(done)`: a context manager yielding a bar with `update(advance=…, **fields)`; `done`
# is what a resume found complete (prompts for rollout, records for score, 0 for select).
Progress = Callable[[int], AbstractContextManager[Any]]
Warn = Callable[[str], None]

# the flags of the rollout settings whose name is not `--` + the key's last part (refusals name them)
ROLLOUT_FLAGS = {"model": "-m", "sampling.n": "-n", "engine.engine": "--engine",
                 "sampling.think_close": "the think close"}


class _NoBar:
    def update(self, **_: Any) -> None:
        pass


@contextmanager
def no_progress(_: int = 0) -> Iterator[_NoBar]:
    yield _NoBar()


@dataclass(frozen=True, kw_only=True)
class Source:
    """Where a stage reads: a path, '-' (stdin) or a HF dataset name; its split; whether bad lines are skipped."""

    path: str = "-"
    split: str | None = None
    skip_invalid: bool = False

    def read(self, sink: Sink, invalid: list[str]) -> Iterator[Located]:
        from r1cli.sources import iter_records

        records = iter_records(self.path, split=self.split, skip_invalid=self.skip_invalid, skipped=invalid)
        return sink.track_input(records, source=self.path)


# ---- rollout --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RolloutJob:
    """What `r1 rollout` samples: the model and engine, sampling, and how prompts are rendered and mapped."""

    model: str | None = None  # as given; None: the engine's default (the served model for openai)
    engine: Any = "hf"  # an EngineChoice (r1cli.engines.options), or an engine's name with `engine_options`
    engine_options: Mapping[str, Any] = field(default_factory=dict)  # None = not given
    sampling: SamplingParams = field(default_factory=SamplingParams)
    template: str | None = None
    system: str | None = None
    prefill: str | None = None
    prompt_field: str | None = None
    answer_field: str | None = None
    extract_answer: str | None = None

    def choice(self) -> Any:
        """The engine and its checked options (an unknown option is a BadOption naming the flag)."""
        from r1cli.engines.options import EngineChoice

        if isinstance(self.engine, EngineChoice):
            return self.engine
        return EngineChoice(self.engine, {k: v for k, v in self.engine_options.items() if v is not None})

    def spec(self, source: Source) -> Spec:
        """The settings on record: the engine options that can change the records are compared on
        resume; the others (batch size, concurrency, timeouts: `engine_runtime`) may change."""
        choice = self.choice()
        engine = choice.record_settings()
        runtime = {k: v for k, v in choice.options.to_dict().items() if k not in engine}
        settings = {"model": self.model, "engine": engine, "engine_runtime": runtime,
                    "sampling": asdict(self.sampling), "template": self.template, "system": self.system,
                    "prefill": self.prefill, "prompt_field": self.prompt_field, "answer_field": self.answer_field,
                    "extract_answer": self.extract_answer, "split": source.split}
        return Spec("rollout", settings, frozenset({"engine_runtime"}), flags=ROLLOUT_FLAGS)

    def default_engine(self) -> Engine:
        """The engine, as `choice()` builds it (the CLI passes its `build_engine` instead)."""
        return self.choice().build(self.model)


@dataclass
class RolloutResult:
    stats: RolloutStats
    clock: BusyClock
    invalid: list[str]  # where the lines --skip-invalid left out are
    samples: int = 1  # per prompt
    retries: int = 0  # openai engine: requests that needed another try

    @property
    def done(self) -> int:
        """Prompts a resume found complete."""
        return self.stats.skipped

    def summary(self) -> dict[str, Any]:
        s = self.stats
        return {"prompts": s.prompts + s.skipped, "completions": s.completions + self.samples * s.skipped,
                "generated": s.completions, "tokens": s.tokens, "truncated": s.truncated, "already_done": s.skipped,
                "seconds": round(self.clock.busy, 2), "tokens_per_s": round(s.tokens / self.clock.busy, 1)}


def rollout_file(source: Source, output: str, job: RolloutJob, *, make_engine: Callable[[], Engine] | None = None,
                 resume: bool = False, progress: Progress = no_progress, warn: Warn | None = None,
                 check: Callable[[str, dict[str, Any]], None] | None = None) -> RolloutResult:
    """Sample `job.sampling.n` completions per prompt of `source` into `output` ('-': stdout).

    The engine is built (`make_engine()`) only once a prompt needs generating, after the first
    prompt has been read and checked (`check(where, record)` may refuse one). With `resume`,
    prompts complete in the output are skipped; another number of samples per prompt, another
    model, settings or input is refused (ResumeMismatch) and nothing is written.
    """
    from r1cli.prompts import prepare_prompts
    from r1cli.rollout import rollout

    stats, clock, invalid = RolloutStats(), BusyClock(), []
    n = job.sampling.n
    engine = None
    with open_output(output, resume=resume, spec=job.spec(source), warn=warn) as sink:
        done = sink.resume_groups(n, note=("model",))
        located = prepare_prompts(source.read(sink, invalid), prompt_field=job.prompt_field,
                                  answer_field=job.answer_field, extract=job.extract_answer)
        pending = _pending(located, done, stats, check)
        first = next(pending, None)  # bad input fails here, before a model loads
        if first is not None:
            engine = (make_engine or job.default_engine)()
            clock.restart()
            groups = rollout(clock.reading(itertools.chain([first], pending)), engine, job.sampling,
                             template=job.template, system=job.system, prefill=job.prefill,
                             prompts_per_call=max(1, engine.batch_size // n), stats=stats)
            with progress(len(done)) as bar:
                for group in groups:
                    if stats.prompts == 1:
                        _same_model(sink, group, output)
                    sink.write_many(group)
                    bar.update(advance=1, speed=f"{stats.tokens / clock.busy:,.1f} tok/s")
        result = RolloutResult(stats, clock, invalid, samples=n, retries=getattr(engine, "retries", 0))
        sink.summary = result.summary()
    return result


def _pending(located: Iterable[Located], done: set[str], stats: RolloutStats,
             check: Callable[[str, dict[str, Any]], None] | None) -> Iterator[Located]:
    for where, record in located:
        if check is not None:
            check(where, record)
        if record["id"] in done:
            stats.skipped += 1
            continue
        yield where, record


def _same_model(sink: Sink, group: list[dict[str, Any]], output: str) -> None:
    """Refuse to add another model's completions to a resumed file (with or without a manifest)."""
    before = sink.values.get("model") or set()
    now = group[0]["model"] if group else None
    if before and before != {now}:
        old = ", ".join(sorted(map(str, before)))
        raise ResumeMismatch(f"{output} holds completions of {old}, not of {now}",
                             hint="resume with the model it was made with, use another -o, or drop --resume "
                                  "to start again")


# ---- score ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ScoreJob:
    """What `r1 score` computes: rewards (NAME[:WEIGHT]) and their parameters; workers and the time budget."""

    rewards: tuple[str, ...] = ("accuracy", "format")
    reward_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    workers: int | None = None
    timeout: float | None = None

    def resolve(self) -> list[Any]:
        from r1cli import rewards

        return rewards.resolve(list(self.rewards), self.reward_params)

    def spec(self, source: Source, built: Iterable[Any]) -> Spec:
        from r1cli.rewards import RULES

        # reward_rules: the built-in rewards' revision; a file of older verdicts is not continued
        settings = {"rewards": {r.name: r.weight for r in built},  # name → weight in `reward`
                    "reward_params": {k: dict(v) for k, v in self.reward_params.items()}, "split": source.split,
                    "workers": self.workers, "timeout": self.timeout, "reward_rules": RULES}
        # --timeout decides which slow records score 0.0, so it is a setting of the records; --workers is not
        return Spec("score", settings, frozenset({"workers"}),
                    flags={"rewards.": "-r ", "reward_params.": "--reward-arg ",
                           "reward_rules": "the revision of r1's reward rules (rescore from the start)"})


@dataclass
class ScoreResult:
    stats: ScoreStats
    clock: BusyClock
    invalid: list[str]
    done: int = 0  # records a resume found complete

    def summary(self) -> dict[str, Any]:
        s = self.stats
        return {"records": s.records + self.done, "already_done": self.done, "unscorable": s.unscorable,
                "timed_out": s.timed_out, "failed": s.failed, "seconds": round(self.clock.elapsed, 2)}


def score_file(source: Source, output: str, job: ScoreJob, *, rewards: list[Any] | None = None,
               resume: bool = False, progress: Progress = no_progress, warn: Warn | None = None) -> ScoreResult:
    """Score every record of `source` into `output`, in input order (`rewards`: built already, else `job.resolve()`).

    Scoring is 1:1, so a resume skips as many input records as the output holds, after checking
    that they are the same records (id, sample, completion): another input is refused.
    """
    from r1cli.scoring import score_located

    built = rewards if rewards is not None else job.resolve()
    stats, clock, invalid = ScoreStats(), BusyClock(), []
    with open_output(output, resume=resume, spec=job.spec(source, built), warn=warn) as sink:
        done = sink.resume_records()
        located = clock.reading(_after_kept(source.read(sink, invalid), sink, done, source.path))
        scored = score_located(located, built, workers=job.workers, timeout=job.timeout, stats=stats)
        with closing(scored), progress(done) as bar:
            for record in scored:
                sink.write(record)
                bar.update(advance=1)
        result = ScoreResult(stats, clock, invalid, done)
        sink.summary = result.summary()
    return result


def _after_kept(located: Iterator[Located], sink: Sink, done: int, source: str) -> Iterator[Located]:
    """The input after the `done` records the output holds, once they are checked to be those."""
    kept = sink.kept_records()
    for count in range(done):
        item = next(located, None)
        there, old = next(kept)
        if item is None:
            raise ResumeMismatch(f"{source} ends after {count:,} records, but {sink.name} holds {done:,}",
                                 hint="give it the input it was made from, use another -o, or drop --resume "
                                      "to start again")
        where, record = item
        if _identity(record) != _identity(old):
            raise ResumeMismatch(f"{where} ({_show(record)}) is not the record scored at {there} ({_show(old)}): "
                                 f"{sink.name} was made from another input",
                                 hint="give it the input it was made from, use another -o, or drop --resume "
                                      "to start again")
    yield from located


def _identity(record: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    return record.get("id"), record.get("sample"), record.get("completion")


def _show(record: Mapping[str, Any]) -> str:
    return f"id {record.get('id')!r}, sample {record.get('sample')!r}"


# ---- select (reject-sample) -----------------------------------------------------------------------------


@dataclass
class SelectResult:
    stats: SelectStats
    clock: BusyClock
    invalid: list[str]

    def summary(self) -> dict[str, Any]:
        s = self.stats
        return {"groups_in": s.groups_in, "groups_kept": s.groups_kept, "records_in": s.records_in,
                "records_kept": s.records_kept, "dropped": dict(s.dropped)}


def select_spec(policy: SelectPolicy, source: Source) -> Spec:
    return Spec("reject-sample", {"policy": asdict(policy), "split": source.split})


def select_file(source: Source, output: str, policy: SelectPolicy, *,
                progress: Progress = no_progress) -> SelectResult:
    """Keep the records of `source` that `policy` keeps, as SFT records, into `output` (redone whole: no resume)."""
    from r1cli.reject_sampling import select_groups

    stats, clock, invalid = SelectStats(), BusyClock(), []
    with open_output(output, spec=select_spec(policy, source)) as sink:
        records = clock.reading(source.read(sink, invalid))
        with progress(0) as bar:
            for kept in select_groups(records, policy, stats):
                sink.write_many(kept)  # a group is written (and flushed) as soon as it is decided
                bar.update(completed=stats.records_in)
        result = SelectResult(stats, clock, invalid)
        sink.summary = result.summary()
    return result
