"""Distillation (R1 §2.4): teacher rollouts → score → reject-sample → fine-tune the student.

It runs the pipeline's own stages (`r1cli.pipeline.stages`: the functions `r1 rollout`,
`r1 score` and `r1 reject-sample` call), then trains. Every intermediate stays in the output
folder, each with its manifest (`r1cli.manifest`):

    OUT/rollouts.jsonl   the teacher's samples (as `r1 rollout` writes them)   + rollouts.jsonl.r1.json
    OUT/scored.jsonl     + rewards (`r1 score`)                                 + scored.jsonl.r1.json
    OUT/selected.jsonl   the kept samples, SFT-ready (`r1 reject-sample`)      + selected.jsonl.r1.json
    OUT/student/         the student's run folder (`r1 sft`, or TRL's GKDTrainer with --method gkd)
                                                                                + student.r1.json

A stage's manifest holds its settings, the fingerprint of its input and of its output, and
whether it finished. A rerun skips a finished stage whose input is still the one it was made
from (the previous stage's output, or the prompts), and continues a partial one: the rollout
and scoring files keep their complete records, as `--resume` does, and the student resumes
from its last checkpoint. A stage that ran with other settings is refused before anything
runs, naming the files to remove to redo it; a stage whose input changed (an earlier stage
was redone) is redone. One distill at a time writes a folder (OUT/distill.lock).

    from r1cli.pipeline.distill import DistillSettings, distill
    distill(DistillSettings.build(teacher="tiny", student="./student0", data="prompts.jsonl", output="out"))
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from r1cli import manifest
from r1cli.engines import Engine, SamplingParams
from r1cli.errors import BadInput, OutputError, R1Error, ResumeMismatch
from r1cli.manifest import Spec
from r1cli.pipeline import stages as st
from r1cli.reject_sampling import SelectPolicy
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
    engine: Any = "hf"  # an EngineChoice (r1cli.engines.options), or an engine's name with `engine_options`
    engine_options: Mapping[str, Any] = field(default_factory=dict)
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

    @property
    def source(self) -> st.Source:
        return st.Source(path=self.data, split=self.split)

    def rollout_job(self, template: str) -> st.RolloutJob:
        return st.RolloutJob(model=self.teacher, engine=self.engine, engine_options=self.engine_options,
                             sampling=self.sampling,
                             template=template, system=self.system, prefill=self.prefill,
                             prompt_field=self.prompt_field, answer_field=self.answer_field,
                             extract_answer=self.extract_answer)

    def score_job(self) -> st.ScoreJob:
        return st.ScoreJob(rewards=tuple(self.rewards), reward_params=self.reward_params, workers=self.score_workers,
                           timeout=self.score_timeout)

    def specs(self, template: str, built: list[Any]) -> dict[str, Spec]:
        """What each stage's output depends on (compared with its manifest on a rerun)."""
        student = self.student.to_json()
        for key in ("resume", "num_processes", "data"):
            student.pop(key, None)
        student["trl"] = {k: v for k, v in student["trl"].items() if k != "output_dir"}
        student["template"] = template
        staged = st.Source(path=str(self.output_dir / OUTPUTS["rollout"]))
        rollout = self.rollout_job(template).spec(self.source)
        return {"rollout": replace(rollout, flags={**rollout.flags, "model": "--teacher"}),
                "score": self.score_job().spec(staged, built),
                "select": st.select_spec(self.policy, staged),
                "train": Spec("train", to_jsonable(student), flags={"model": "--student"})}


# ---- stage bookkeeping ---------------------------------------------------------------------------


@dataclass
class Stage:
    """One stage's output in the output folder, and what its manifest says of it."""

    name: str
    folder: Path
    spec: Spec

    @property
    def output(self) -> Path:
        return self.folder / OUTPUTS[self.name]

    @property
    def part(self) -> Path:
        return Path(str(self.output) + ".part")

    def record(self) -> dict[str, Any] | None:
        """The manifest of the stage's partial output, else of its finished one."""
        if self.name != "train" and self.part.exists():
            return manifest.read(self.part)
        return manifest.read(self.output) if self.output.exists() else None

    def finished(self) -> dict[str, Any] | None:
        """The manifest of the finished output (None while partial or absent)."""
        if self.name != "train" and self.part.exists():
            return None
        marker = self.record()
        return marker if marker is not None and marker.get("complete") else None

    def check_settings(self) -> None:
        """Refuse a stage (finished or partial) that ran with other settings than these."""
        marker = self.record()
        if marker is None:
            return
        changes = self.spec.changes(marker.get("settings") or {})
        if marker.get("command") != self.spec.command or changes:
            state = "finished" if marker.get("complete") else "started"
            listed = "; ".join(c.describe() for c in changes[:4]) or f"written by r1 {marker.get('command')}"
            raise OutputError(f"{self.folder}: the {self.name} stage {state} with other settings ({listed})",
                              hint=self.redo_hint())

    def redo_hint(self) -> str:
        later = STAGES[STAGES.index(self.name):]
        files = " ".join(str(self.folder / OUTPUTS[s]) + "*" for s in later)
        return f"use another -o, or redo it and the later stages: rm -r {files}"

    def clear(self) -> None:
        """Remove the stage's output (finished or partial) and its manifests: it is redone from scratch."""
        if self.output.is_dir():
            shutil.rmtree(self.output)
        else:
            self.output.unlink(missing_ok=True)
        self.part.unlink(missing_ok=True)
        for path in (self.output, self.part):
            manifest.sidecar(path).unlink(missing_ok=True)


def _same(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Two fingerprints of the same records (the `source` they were read from aside)."""
    if not a or not b:
        return False
    return (a.get("records"), a.get("sha256")) == (b.get("records"), b.get("sha256"))


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


def distill(settings: DistillSettings, *, make_engine: Callable[[], Engine] | None = None,
            progress: Callable[[str], Any] = _no_bar, log: Callable[[str], None] = lambda _: None,
            warn: Callable[[str], None] | None = None) -> DistillResult:
    """Run the stages that are not done yet. `make_engine()` builds the teacher's engine (default:
    `RolloutJob.default_engine`; the CLI passes its `build_engine`), only when a prompt needs it.
    `progress(stage)` gives a context manager yielding a bar with `update(advance=…, total=…,
    completed=…)`; `log` receives one line per stage; `warn` what deserves a warning."""
    from r1cli.files import exclusive

    start = time.perf_counter()
    built, template = check(settings)
    out = settings.output_dir
    specs = settings.specs(template, built)
    stages = {name: Stage(name, out, specs[name]) for name in STAGES}
    for stage in stages.values():
        stage.check_settings()
    out.mkdir(parents=True, exist_ok=True)
    bars = lambda name: lambda done: progress(name)  # noqa: E731
    ran: dict[str, str] = {}
    summaries: dict[str, dict[str, Any]] = {}
    with exclusive(out / "distill.lock", what=str(out)):
        for stage in stages.values():
            stage.check_settings()  # again, now that no other distill can change them
        previous: Mapping[str, Any] | None = None  # the fingerprint of the last stage's output
        for name, stage in stages.items():
            finished = stage.finished()
            if finished is not None and _unchanged(stage, finished, previous, settings):
                ran[name], summaries[name] = "skipped", dict(finished.get("summary") or {})
                log(f"{name}: done already ({stage.output})")
            else:
                resumed = stage.record() is not None
                if name == "rollout":
                    summaries[name] = _rollout(settings, template, built, stage, make_engine, bars(name), warn)
                elif name == "score":
                    summaries[name] = _score(settings, built, stage, bars(name), warn)
                elif name == "select":
                    stage.clear()  # streaming and cheap: redone whole, never resumed
                    resumed = False
                    summaries[name] = st.select_file(st.Source(path=str(out / OUTPUTS["score"])),
                                                     str(stage.output), settings.policy).summary()
                else:
                    resumed = _train_stage(settings, stage, previous, progress, summaries)
                ran[name] = "resumed" if resumed else "ran"
                log(f"{name}: {_describe(name, summaries[name])} → {stage.output}")
            previous = (stage.finished() or {}).get("output")
            summary = summaries[name]
            if name == "select" and not summary.get("records_kept"):
                raise R1Error(f"no sample survived selection ({_describe('select', summary)})",
                              hint=survivor_advice(summary.get("dropped") or {}) + "; a rerun with other filters "
                                   f"redoes selection only after: rm -r {out / 'selected.jsonl'}* {out / 'student'}*")
    return DistillResult(output_dir=out, ran=ran, summaries=summaries, seconds=time.perf_counter() - start)


def _unchanged(stage: Stage, finished: Mapping[str, Any], previous: Mapping[str, Any] | None,
               settings: DistillSettings) -> bool:
    """Whether a finished stage's input is still the one it was made from."""
    if stage.name != "rollout":
        return _same(finished.get("input"), previous)
    if settings.data == "-":
        return False  # stdin cannot be read twice: the stage reads it, skipping every prompt it has
    from r1cli.sources import read_records

    return _same(finished.get("input"), manifest.fingerprint(read_records(settings.data, split=settings.split)))


def check(settings: DistillSettings) -> tuple[list[Any], str]:
    """Everything that can be checked before a model loads: rewards, the policy against them, the
    template both models use, the student's training settings and, for gkd, a shared vocabulary.
    Returns the built rewards and the template."""
    from r1cli import rewards as registry
    from r1cli.models import load_tokenizer
    from r1cli.templates import check_template
    from r1cli.training.gkd import check_shared_vocabulary
    from r1cli.training.sft import sft_config

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
             make_engine: Callable[[], Engine] | None, progress: st.Progress,
             warn: Callable[[str], None] | None) -> dict[str, Any]:
    from r1cli.rewards import missing_fields

    def has_fields(where: str, record: dict[str, Any]) -> None:
        for name, reward in [(f, r) for f, r in missing_fields(record, built) if f != "completion"]:
            raise BadInput(f"{where}: no '{name}' field, which the {reward} reward needs",
                           hint="add it to the data, map it with --answer-field, or drop -r " + reward)

    try:
        result = st.rollout_file(settings.source, str(stage.output), settings.rollout_job(template),
                                 make_engine=make_engine, resume=True, progress=progress, warn=warn, check=has_fields)
    except ResumeMismatch as exc:
        raise OutputError(exc.message, hint=stage.redo_hint()) from None
    if not result.stats.prompts and not result.done:
        stage.clear()
        raise BadInput(f"{settings.data}: no prompt records", hint="distill needs prompts to sample the teacher on")
    return result.summary()


def _score(settings: DistillSettings, built: list[Any], stage: Stage, progress: st.Progress,
           warn: Callable[[str], None] | None) -> dict[str, Any]:
    source = st.Source(path=str(stage.folder / OUTPUTS["rollout"]))

    def run() -> dict[str, Any]:
        return st.score_file(source, str(stage.output), settings.score_job(), rewards=built, resume=True,
                             progress=progress, warn=warn).summary()

    try:
        return run()
    except ResumeMismatch:  # scored from rollouts that were redone since: score them again
        stage.clear()
        return run()


def _train_stage(settings: DistillSettings, stage: Stage, previous: Mapping[str, Any] | None,
                 progress: Callable[[str], Any], summaries: dict[str, dict[str, Any]]) -> bool:
    """Train the student (resuming a run on the same kept samples); True when it resumed."""
    marker = stage.record()
    resume = (marker is not None and not marker.get("complete") and _same(marker.get("input"), previous)
              and stage.output.is_dir())
    if not resume:
        stage.clear()
    manifest.write(stage.output, stage.spec, input=previous, output=None, complete=False)
    summaries["train"] = _train(replace(settings.student, resume=resume), progress)
    manifest.write(stage.output, stage.spec, input=previous, output=None, complete=True, summary=summaries["train"])
    return resume


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
