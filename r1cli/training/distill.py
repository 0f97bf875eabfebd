"""Distillation (R1 §2.4): teacher rollouts → score → reject-sample → fine-tune the student.

Every intermediate stays in the output folder:

    OUT/rollouts.jsonl   the teacher's samples (as `r1 rollout` writes them)
    OUT/scored.jsonl     + rewards (`r1 score`)
    OUT/selected.jsonl   the kept samples, SFT-ready (`r1 reject-sample`)
    OUT/student/         the student's run folder (`r1 sft`, or TRL's GKDTrainer with --method gkd)

Each stage writes `OUT/<stage>.started` (its settings and the stage it reads) before it runs and
`OUT/<stage>.done` (the same, its counts and an id) once its output is in place. A rerun skips
the stages that are done and continues a partial one: the rollout and scoring files keep their
complete records (the `--resume` machinery of `r1 rollout` and `r1 score`), and the student
resumes from its last checkpoint. A stage that ran with other settings is refused, naming the
files to remove to redo it; a stage whose input stage was redone is redone.

    from r1cli.training.distill import DistillSettings, distill
    distill(DistillSettings.build(teacher="tiny", student="./student0", data="prompts.jsonl", output="out"))
"""

from __future__ import annotations

import itertools
import json
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from r1cli.engines import SamplingParams
from r1cli.errors import BadInput, OutputError, R1Error
from r1cli.select import SelectPolicy
from r1cli.training.config import to_jsonable
from r1cli.training.sft import SFTSettings

STAGES = ("rollout", "score", "select", "train")
OUTPUTS = {"rollout": "rollouts.jsonl", "score": "scored.jsonl", "select": "selected.jsonl", "train": "student"}
METHODS = ("sft", "gkd")


@dataclass(frozen=True, kw_only=True)
class DistillSettings:
    """A distillation run: the teacher's sampling, rewards, selection policy, and the student's training."""

    teacher: str
    output_dir: Path
    student: SFTSettings
    data: str = "-"
    sampling: SamplingParams = field(default_factory=lambda: SamplingParams(n=4))
    template: str | None = None
    system: str | None = None
    prefill: str | None = None  # the teacher's answers start with it; the student learns to write it
    split: str | None = None
    prompt_field: str | None = None
    answer_field: str | None = None
    extract_answer: str | None = None
    engine: str = "hf"
    rollout_batch_size: int = 64
    dtype: str | None = None
    rewards: tuple[str, ...] = ("accuracy", "format")
    reward_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    score_workers: int | None = None
    score_timeout: float | None = None  # None: each record's budget from its rewards' limits
    policy: SelectPolicy = field(default_factory=SelectPolicy)

    @classmethod
    def build(cls, *, teacher: str, student: str, output: str, method: str = "sft",
              sft_flags: Mapping[str, Any] | None = None, recipe: str | Path | Mapping[str, Any] | None = None,
              **options: Any) -> DistillSettings:
        """Settings from the command's options: the student's training flags and recipe as `r1 sft`'s.

        The student trains on OUTPUT/selected.jsonl into OUTPUT/student; with `method="gkd"` the
        teacher is its GKD teacher as well.
        """
        if method not in METHODS:  # on-policy has no stages: `r1cli.training.onpolicy`
            raise R1Error(f"unknown method '{method}'. Choose from: {', '.join(METHODS)}, on-policy.")
        if not teacher or not student:
            raise R1Error("distill needs a teacher and a student", hint="give --teacher MODEL and --student MODEL")
        if not output:
            raise R1Error("no output folder", hint="give -o FOLDER: the stages' files and the student go there")
        out = Path(output)
        flags = {**(sft_flags or {}), "model": student, "data": str(out / OUTPUTS["select"]),
                 "output": str(out / OUTPUTS["train"]), "method": method,
                 "teacher": teacher if method == "gkd" else None}
        student_settings = SFTSettings.build(flags, recipe)
        return cls(teacher=teacher, output_dir=out, student=student_settings, **options)

    def stage_settings(self, template: str) -> dict[str, dict[str, Any]]:
        """What each stage's output depends on (compared with a finished stage's on a rerun)."""
        student = self.student.to_json()
        for key in ("resume", "num_processes", "data"):
            student.pop(key, None)
        student["trl"] = {k: v for k, v in student["trl"].items() if k != "output_dir"}
        student["template"] = template
        return to_jsonable({
            "rollout": {"teacher": self.teacher, "data": self.data, "split": self.split,
                        "prompt_field": self.prompt_field, "answer_field": self.answer_field,
                        "extract_answer": self.extract_answer, "template": template, "system": self.system,
                        "prefill": self.prefill, "sampling": asdict(self.sampling), "engine": self.engine, "dtype": self.dtype},
            "score": {"rewards": list(self.rewards), "reward_params": self.reward_params},
            "select": asdict(self.policy),
            "train": student,
        })


# ---- stage bookkeeping ---------------------------------------------------------------------------


@dataclass
class Stage:
    """One stage's output and its marker files in the output folder."""

    name: str
    folder: Path
    settings: dict[str, Any]

    @property
    def output(self) -> Path:
        return self.folder / OUTPUTS[self.name]

    @property
    def done_file(self) -> Path:
        return self.folder / f"{self.name}.done"

    @property
    def started_file(self) -> Path:
        return self.folder / f"{self.name}.started"

    def done(self) -> dict[str, Any] | None:
        return _read_json(self.done_file)

    def check_settings(self) -> None:
        """Refuse a stage (finished or partial) that ran with other settings than these."""
        for path, state in ((self.done_file, "finished"), (self.started_file, "started")):
            marker = _read_json(path)
            if marker is not None and marker.get("settings") != self.settings:
                changed = sorted(_changed(marker.get("settings") or {}, self.settings))
                later = STAGES[STAGES.index(self.name):]
                files = " ".join(str(self.folder / OUTPUTS[s]) + "*" for s in later)
                raise OutputError(f"{self.folder}: the {self.name} stage {state} with other settings "
                                  f"({', '.join(changed) or 'changed'})",
                                  hint=f"use another -o, or redo it and the later stages: rm -r {files} "
                                       + " ".join(str(self.folder / f"{s}.*") for s in later))

    def begin(self, input_id: str | None) -> str:
        """'skip' (done, on the current input), 'resume' (a partial run on this input) or 'fresh'."""
        done = self.done()
        if done is not None and done.get("input") == input_id and self.output.exists():
            return "skip"
        started = {"settings": self.settings, "input": input_id}
        if done is None and _read_json(self.started_file) == started:
            return "resume"
        self.clear()
        _write_json(self.started_file, started)
        return "fresh"

    def finish(self, input_id: str | None, summary: Mapping[str, Any]) -> str:
        stage_id = uuid.uuid4().hex
        _write_json(self.done_file, {"settings": self.settings, "input": input_id, "id": stage_id,
                                     "summary": to_jsonable(summary)})
        self.started_file.unlink(missing_ok=True)
        return stage_id

    def clear(self) -> None:
        """Remove the stage's output (finished or partial) and its markers: it is redone from scratch."""
        self.done_file.unlink(missing_ok=True)
        self.started_file.unlink(missing_ok=True)
        if self.output.is_dir():
            shutil.rmtree(self.output)
        else:
            self.output.unlink(missing_ok=True)
            Path(str(self.output) + ".part").unlink(missing_ok=True)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _changed(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """The dotted keys whose values differ.

    >>> sorted(_changed({"a": 1, "b": {"c": 2, "d": 3}}, {"a": 1, "b": {"c": 4}}))
    ['b.c', 'b.d']
    """
    for key in set(old) | set(new):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            yield from _changed(a, b, f"{prefix}{key}.")
        elif a != b:
            yield f"{prefix}{key}"


# ---- the run ---------------------------------------------------------------------------------------


@dataclass
class DistillResult:
    output_dir: Path
    ran: dict[str, str]  # stage → "skipped", "resumed" or "ran"
    summaries: dict[str, dict[str, Any]]
    seconds: float


@contextmanager
def _no_bar(_: str) -> Iterator[Any]:
    class _Bar:
        def update(self, **_: Any) -> None:
            pass

    yield _Bar()


def distill(settings: DistillSettings, *, progress: Callable[[str], Any] = _no_bar,
            log: Callable[[str], None] = lambda _: None) -> DistillResult:
    """Run the stages that are not done yet. `progress(stage)` gives a context manager yielding a
    bar with `update(advance=…, total=…, completed=…)`; `log` receives one line per stage."""
    start = time.perf_counter()
    built, template = check(settings)
    out = settings.output_dir
    # no template for the student: the kept records hold the prompts as the teacher saw them
    student = settings.student
    all_settings = settings.stage_settings(template)
    stages = [Stage(name, out, all_settings[name]) for name in STAGES]
    for stage in stages:
        stage.check_settings()
    out.mkdir(parents=True, exist_ok=True)
    runners = {
        "rollout": lambda stage, state: _rollout(settings, template, built, stage, progress),
        "score": lambda stage, state: _score(settings, built, stage, progress),
        "select": lambda stage, state: _select(settings, stage),
        "train": lambda stage, state: _train(replace(student, resume=state == "resume"), progress),
    }
    ran: dict[str, str] = {}
    summaries: dict[str, dict[str, Any]] = {}
    input_id: str | None = None
    for stage in stages:
        state = stage.begin(input_id)
        if state == "skip":
            marker = stage.done() or {}
            ran[stage.name], summaries[stage.name] = "skipped", marker.get("summary", {})
            log(f"{stage.name}: done already ({stage.output})")
            input_id = marker.get("id")
        else:
            summary = runners[stage.name](stage, state)
            ran[stage.name], summaries[stage.name] = ("resumed" if state == "resume" else "ran"), summary
            input_id = stage.finish(input_id, summary)
            log(f"{stage.name}: {_describe(stage.name, summary)} → {stage.output}")
        summary = summaries[stage.name]
        if stage.name == "select" and not summary.get("records_kept"):
            raise R1Error(f"no sample survived selection ({_describe('select', summary)})",
                          hint=survivor_advice(summary.get("dropped") or {}) + "; a rerun with other filters redoes selection only "
                               f"after: rm -r {out / 'selected.jsonl'}* {out / 'select.*'} {out / 'student'}* "
                               f"{out / 'train.*'}")
    return DistillResult(output_dir=out, ran=ran, summaries=summaries, seconds=time.perf_counter() - start)


def check(settings: DistillSettings) -> tuple[list[Any], str]:
    """Everything that can be checked before a model loads: rewards, the policy against them, the
    template both models use, the student's training settings and, for gkd, a shared vocabulary.
    Returns the built rewards and the template."""
    from r1cli import rewards as registry
    from r1cli.models import load_tokenizer
    from r1cli.templates import check_template
    from r1cli.training.sft import check_shared_vocabulary, sft_config

    out = settings.output_dir
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} is a file, not a folder", hint="give -o a folder path")
    built = registry.resolve(list(settings.rewards), settings.reward_params)
    names = [r.name for r in built]
    if settings.policy.correct_only and "accuracy" not in names:
        raise R1Error("--correct-only keeps samples whose accuracy is 1, but the accuracy reward is not computed",
                      hint="add -r accuracy, or pass --no-correct-only (with --min-reward to keep by reward)")
    if settings.template is not None:
        template = check_template(settings.template)
    else:
        template = "chat" if getattr(load_tokenizer(settings.teacher), "chat_template", None) else "none"
    if template == "chat" and not getattr(load_tokenizer(settings.student.model), "chat_template", None):
        raise R1Error(f"the student ({settings.student.model}) has no chat template, and the teacher's prompts "
                      "are chat messages", hint="give both plain-text prompts: --template r1-zero (or none)")
    if settings.student.method == "gkd":
        if template != "chat":
            raise R1Error(f"--method gkd trains on chat messages; template '{template}' gives plain text",
                          hint="use --template chat with models that have a chat template, or --method sft")
        check_shared_vocabulary(settings.teacher, settings.student.model)
    sft_config(settings.student)  # bad training settings fail now, not after the rollouts
    return built, template


def _rollout(settings: DistillSettings, template: str, built: list[Any], stage: Stage,
             progress: Callable[[str], Any]) -> dict[str, Any]:
    from r1cli.engines import get_engine
    from r1cli.io import iter_records, open_output, prepare_prompts
    from r1cli.rewards import missing_fields
    from r1cli.rollout import RolloutStats, rollout

    stats = RolloutStats()
    start = time.perf_counter()
    n = settings.sampling.n
    with open_output(str(stage.output), resume=True) as sink:
        done = sink.resume_groups(n)
        located = prepare_prompts(iter_records(settings.data, split=settings.split),
                                  prompt_field=settings.prompt_field, answer_field=settings.answer_field,
                                  extract=settings.extract_answer)

        def pending() -> Iterator[tuple[str, dict[str, Any]]]:
            for where, record in located:
                for name, reward in [(f, r) for f, r in missing_fields(record, built) if f != "completion"]:
                    raise BadInput(f"{where}: no '{name}' field, which the {reward} reward needs",
                                   hint="add it to the data, map it with --answer-field, or drop -r " + reward)
                if record["id"] not in done:
                    yield where, record

        todo = pending()
        first = next(todo, None)  # bad data fails here, before the teacher loads
        if first is not None:
            engine = get_engine(settings.engine, settings.teacher, batch_size=settings.rollout_batch_size,
                                dtype=settings.dtype)
            start = time.perf_counter()
            groups = rollout(itertools.chain([first], todo), engine, settings.sampling, template=template,
                             system=settings.system, prefill=settings.prefill, prompts_per_call=max(1, settings.rollout_batch_size // n),
                             stats=stats)
            with progress("rollout") as bar:
                for group in groups:
                    sink.write_many(group)
                    bar.update(advance=1)
    if not stats.prompts and not done:
        stage.clear()
        raise BadInput(f"{settings.data}: no prompt records", hint="distill needs prompts to sample the teacher on")
    seconds = time.perf_counter() - start
    return {"prompts": stats.prompts + len(done), "completions": stats.completions + n * len(done),
            "generated": stats.completions, "tokens": stats.tokens, "truncated": stats.truncated,
            "already_done": len(done), "seconds": round(seconds, 2),
            "tokens_per_s": round(stats.tokens / max(seconds, 1e-9), 1)}


def _score(settings: DistillSettings, built: list[Any], stage: Stage, progress: Callable[[str], Any]) -> dict[str, Any]:
    from r1cli.io import iter_records, open_output
    from r1cli.scoring import ScoreStats, score_located

    stats = ScoreStats()
    start = time.perf_counter()
    source = stage.folder / OUTPUTS["rollout"]
    with open_output(str(stage.output), resume=True) as sink:
        done = sink.resume_records()
        located = itertools.islice(iter_records(str(source)), done, None)  # scoring is 1:1 and keeps order
        scored = score_located(located, built, workers=settings.score_workers, timeout=settings.score_timeout,
                               stats=stats)
        with closing(scored), progress("score") as bar:
            for record in scored:
                sink.write(record)
                bar.update(advance=1)
    return {"records": stats.records + done, "already_done": done, "unscorable": stats.unscorable,
            "timed_out": stats.timed_out, "failed": stats.failed, "seconds": round(time.perf_counter() - start, 2)}


def _select(settings: DistillSettings, stage: Stage) -> dict[str, Any]:
    from r1cli.io import iter_records, open_output
    from r1cli.select import SelectStats, select_groups

    stats = SelectStats()
    source = stage.folder / OUTPUTS["score"]
    with open_output(str(stage.output)) as sink:  # streaming and cheap: redone whole, never resumed
        for kept in select_groups(iter_records(str(source)), settings.policy, stats):
            sink.write_many(kept)
    return {"groups_in": stats.groups_in, "groups_kept": stats.groups_kept, "records_in": stats.records_in,
            "records_kept": stats.records_kept, "dropped": dict(stats.dropped)}


def _train(student: SFTSettings, progress: Callable[[str], Any]) -> dict[str, Any]:
    from r1cli.training import sft

    if student.num_processes > 1:
        code = sft.launch(student, quiet=True)
        if code:
            raise R1Error(f"the student's training processes failed (exit status {code})",
                          hint="rerun: training resumes from the last checkpoint in the student folder")
        rows = list(_metrics(student.output_dir))
        return {"steps": rows[-1]["step"] if rows else 0, "loss": rows[-1].get("loss") if rows else None,
                "processes": student.num_processes}
    with progress(f"student ({student.method})") as bar:
        def update(step: int, total: int, **_: Any) -> None:
            bar.update(total=total if total and total > 0 else None, completed=step)

        result = sft.train(student, progress=update)
    return {"steps": result.steps, "first_step": result.first_step, "seconds": round(result.seconds, 2),
            "loss": result.last.get("loss"), "resumed_from": result.resumed_from}


def _metrics(folder: Path) -> Iterator[dict[str, Any]]:
    from r1cli.training.run import METRICS_FILE, iter_metrics

    path = folder / METRICS_FILE
    return iter_metrics(path) if path.is_file() else iter(())


# what loosens each reject-sample filter, for the advice when nothing survives
_LOOSEN = {
    "truncated": "--keep-truncated, or more room: --max-new-tokens",
    "too-long": "a higher --max-tokens",
    "empty": "more room (--max-new-tokens) or a stronger teacher",
    "incorrect": "--no-correct-only (with --min-reward to keep by reward), -n for more samples, or a stronger teacher",
    "unverified": "-r accuracy, or --no-correct-only",
    "no-reward": "a reward every record can earn (see r1 score --list)",
    "low-reward": "a lower --min-reward",
    "code-block": "--allow-code-blocks",
    "long-paragraph": "a higher --max-paragraph-words",
    "mixed-language": "a higher --max-mixed",
    "language": "a lower --min-language, or the prompts' own --language",
}


def survivor_advice(dropped: Mapping[str, int]) -> str:
    """What to loosen when selection kept nothing, led by the filter that dropped most.

    >>> survivor_advice({"truncated": 8, "incorrect": 2})
    'most were dropped as truncated (8): use --keep-truncated, or more room: --max-new-tokens; then incorrect (2): --no-correct-only (with --min-reward to keep by reward), -n for more samples, or a stronger teacher'
    """
    ranked = [(reason, count) for reason, count in sorted(dropped.items(), key=lambda rc: -rc[1])
              if count and reason in _LOOSEN]
    if not ranked:
        return "sample more (-n), or use a stronger teacher"
    (first, count), rest = ranked[0], ranked[1:3]
    advice = f"most were dropped as {first} ({count:,}): use {_LOOSEN[first]}"
    return advice + "".join(f"; then {reason} ({n:,}): {_LOOSEN[reason]}" for reason, n in rest)


def _describe(name: str, s: Mapping[str, Any]) -> str:
    """One line per stage for the log.

    >>> _describe("select", {"records_kept": 3, "records_in": 8, "groups_kept": 2, "groups_in": 2,
    ...                      "dropped": {"incorrect": 5}})
    'kept 3 of 8 samples (2 of 2 prompts; dropped: incorrect 5)'
    """
    if name == "rollout":
        resumed = f", {s['already_done']:,} prompts done before" if s.get("already_done") else ""
        return (f"{s['completions']:,} completions for {s['prompts']:,} prompts ({s['tokens']:,} tokens generated, "
                f"{s['tokens_per_s']:,.1f} tok/s, {s['truncated']:,} truncated{resumed})")
    if name == "score":
        resumed = f", {s['already_done']:,} scored before" if s.get("already_done") else ""
        return f"scored {s['records']:,} samples ({s['unscorable']:,} unscorable, {s['timed_out']:,} timed out{resumed})"
    if name == "select":
        dropped = ", ".join(f"{k} {v:,}" for k, v in s["dropped"].items()) or "none"
        return (f"kept {s['records_kept']:,} of {s['records_in']:,} samples ({s['groups_kept']:,} of "
                f"{s['groups_in']:,} prompts; dropped: {dropped})")
    loss = f", loss {s['loss']:.3g}" if isinstance(s.get("loss"), (int, float)) else ""
    resumed = f", resumed from {s['resumed_from']}" if s.get("resumed_from") else ""
    return f"trained {s['steps']:,} steps{loss}{resumed}"
