"""The base of every training run: the settings GRPO, SFT, GKD and on-policy distillation share,
the run's record (r1_config.json) with the resume rule, and launching N ranks.

A trainer is a `RunSettings` subclass: its fields are r1's own settings, `trl` holds the TRL
config's fields, and its class attributes say which TRL config it fills (`config_class`), r1's
defaults for it and the flags that set its fields. `train()` runs it in this process; `launch()`
starts N ranks of `python -m r1cli.training.worker LAUNCH_FILE` under `accelerate launch`.

**The record.** r1_config.json says what a run is: the trainer (`trainer`), r1's settings with
the template resolved (`r1`), a fingerprint of the records it trains on (`data`), the TRL config the
trainer ran with (`<trainer>_config`), the process count, versions, and the resumes (`history`).
It is written by the training process once the trainer is built, never before a resume is accepted.

**The resume rule.** `--resume` compares the record with the settings given now
(`r1cli.manifest`) and refuses any difference, naming the setting, both values and the fix;
only the settings in `MAY_CHANGE` (how long the run goes on, how often it logs, saves and
evaluates, where it is written and on how many processes) may differ, and the record then
shows their new values, with the change in `history`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar

from r1cli.errors import OutputError, R1Error
from r1cli.manifest import Change, differences, mismatch
from r1cli.training import run
from r1cli.training.config import field_names, to_jsonable

# The trainers, by the name r1_config.json and the launch file give them (imported on use).
TRAINERS = {
    "grpo": "r1cli.training.grpo:GRPOSettings",
    "sft": "r1cli.training.sft:SFTSettings",
    "gkd": "r1cli.training.gkd:GKDSettings",
    "on-policy": "r1cli.training.onpolicy:OnPolicySettings",
}
WORKER_MODULE = "r1cli.training.worker"
LAUNCH_FILE = "r1_launch.json"  # what the ranks of --num-processes run; removed when they exit

# What may differ on --resume (keys of the record's `r1` section; `trl.` for the trainer config's
# fields). A longer run (max_steps, num_train_epochs: the LR schedule stretches to the new end,
# which metrics.jsonl's `lr` shows), the save/log/eval cadence, the path to the same folder. The
# process count may not: the global batch is per-device batch × grad-accum × processes, so another
# count is another optimisation. The data may move when its content, fingerprinted, is the same. The model, the
# data's content, rewards, loss and every optimisation setting make it another run. shared_prefix changes how
# the log-probs are computed, not their values (up to float summation order).
MAY_CHANGE = frozenset({
    "resume", "eval_every", "stall_steps", "shared_prefix",
    "trl.max_steps", "trl.num_train_epochs", "trl.output_dir", "trl.save_steps", "trl.save_total_limit",
    "trl.save_strategy", "trl.logging_steps", "trl.logging_first_step", "trl.logging_dir", "trl.report_to",
    "trl.run_name", "trl.disable_tqdm", "trl.dataloader_num_workers",
})


@dataclass(frozen=True, kw_only=True)
class RunSettings:
    """r1's settings of one TRL trainer run, and the TRL config's fields in `trl`."""

    resume: bool = False
    trl: Mapping[str, Any] = field(default_factory=dict)

    TRAINER: ClassVar[str] = ""  # its name in TRAINERS and r1_config.json
    WHAT: ClassVar[str] = ""  # how messages name it: "GRPO", "SFT", …
    TRL_DEFAULTS: ClassVar[Mapping[str, Any]] = {}  # r1's defaults for TRL fields, where they differ from TRL's
    FLAG_FIELDS: ClassVar[Mapping[str, str]] = {}  # flag names → the TRL field they set
    TUPLES: ClassVar[tuple[str, ...]] = ()  # fields that are tuples (lists in JSON and YAML)

    def __post_init__(self) -> None:
        if not self.trl.get("output_dir"):
            raise R1Error("no output folder", hint="give -o FOLDER (or output_dir in the recipe)")

    @property
    def output_dir(self) -> Path:
        return Path(self.trl["output_dir"])

    @property
    def config_key(self) -> str:
        """The record's key for the TRL config: grpo_config, sft_config, …"""
        return f"{self.TRAINER}_config"

    @classmethod
    def config_class(cls) -> type:
        """The TRL config class whose fields `trl` holds (imports TRL)."""
        raise NotImplementedError

    @classmethod
    def own_fields(cls) -> set[str]:
        return {f.name for f in fields(cls)} - {"trl"}

    @classmethod
    def build(cls, flags: Mapping[str, Any], recipe: str | Path | Mapping[str, Any] | None = None) -> Any:
        """Resolve settings: r1's defaults < the recipe < flags (None = not given).

        `flags` holds r1 settings (`model`, …), the flag names of `FLAG_FIELDS` (`epochs`,
        `output`, …) and any other field of the TRL config by its own name.
        """
        layers = run.layer_settings(flags, recipe, trainer_fields=field_names(cls.config_class()),
                                    own_fields=cls.own_fields(), flag_fields=cls.FLAG_FIELDS,
                                    defaults=cls.TRL_DEFAULTS, what=cls.WHAT)
        return cls(**cls._normal(cls._own(layers)), trl=layers.trainer)

    @classmethod
    def _own(cls, layers: run.Layers) -> dict[str, Any]:
        """r1's own settings from the recipe and the flags (flags win)."""
        return layers.own

    @classmethod
    def _normal(cls, own: dict[str, Any]) -> dict[str, Any]:
        """Values as the fields hold them, from flags, a recipe or JSON."""
        for key in cls.TUPLES:
            if key in own:
                own[key] = tuple([own[key]] if isinstance(own[key], str) else own[key] or ())
        return own

    def to_json(self) -> dict[str, Any]:
        return to_jsonable(asdict(self))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Any:
        own = {k: v for k, v in data.items() if k in cls.own_fields()}
        return cls(**cls._normal(own), trl=dict(data.get("trl", {})))

    def config(self) -> Any:
        """The TRL config object, with bf16 off where there is no GPU; bad values become R1Error."""
        return run.make_config(self.config_class(), run.cpu_defaults(dict(self.trl)), what=self.WHAT)

    def train(self, **options: Any) -> run.RunResult:
        """Train in this process (or as one rank of `accelerate launch`) and save the model."""
        raise NotImplementedError

    def plan_launch(self) -> Launch:
        """Check data and settings here, once, before N ranks start (see `launch`)."""
        raise NotImplementedError(f"{self.WHAT} runs in one process")

    @staticmethod
    def progress(logs: Mapping[str, Any]) -> dict[str, Any]:
        """The figures the progress bar and the summary show, from the trainer's logs."""
        return {"loss": logs.get("loss")}

    @staticmethod
    def stats(values: Mapping[str, Any]) -> str:
        """Those figures as text: `loss 0.5`."""
        loss = values.get("loss")
        return f"loss {loss:.3g}" if isinstance(loss, (int, float)) else ""


@dataclass(frozen=True, kw_only=True)
class TrainSettings(RunSettings):
    """What `r1 grpo` and `r1 sft` share: the model and its data, LoRA, processes, held-out evaluation."""

    model: str = "smollm2-135m"
    data: str = "-"
    template: str | None = None
    system: str | None = None
    split: str | None = None
    lora: tuple[int, int] | None = None
    num_processes: int = 1
    eval_data: str | None = None
    eval_every: int | None = None
    eval_samples: int = 4
    save_best: str | None = None

    def __post_init__(self) -> None:
        from r1cli.training.eval_callback import check_eval_settings

        check_eval_settings(self)
        if self.num_processes < 1:
            raise R1Error(f"--num-processes must be at least 1, got {self.num_processes}")
        super().__post_init__()

    @classmethod
    def _normal(cls, own: dict[str, Any]) -> dict[str, Any]:
        own = super()._normal(own)
        own["lora"] = run.normalise_lora(own.get("lora"))
        return own


def settings_class(trainer: str) -> type[RunSettings]:
    """The settings class of a trainer named in a record or a launch file."""
    if trainer not in TRAINERS:
        raise R1Error(f"unknown trainer '{trainer}'. Choose from: {', '.join(TRAINERS)}.")
    module, _, name = TRAINERS[trainer].partition(":")
    return getattr(importlib.import_module(module), name)


# ---- the record and the resume rule -------------------------------------------------------------


def fingerprint(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The training records' count and sha256 (of their JSON lines, keys sorted): another input, or
    the same file changed, is another run.

    >>> fingerprint([{"prompt": "2+2?"}])["records"]
    1
    """
    digest, count = hashlib.sha256(), 0
    for row in rows:
        digest.update(json.dumps(row, sort_keys=True, ensure_ascii=False, default=str).encode() + b"\n")
        count += 1
    return {"records": count, "sha256": digest.hexdigest()}


def record(settings: RunSettings, rows: Iterable[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """What r1_config.json will say the run is (before the trainer config and history join it)."""
    out: dict[str, Any] = {"trainer": settings.TRAINER, "r1": settings.to_json()}
    if rows is not None:
        out["data"] = fingerprint(rows)
    return out


def read_record(output_dir: Path) -> dict[str, Any] | None:
    """The run's r1_config.json, or None when there is none (or it is not a record)."""
    try:
        data = json.loads((output_dir / run.CONFIG_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("r1"), dict) else None


@dataclass
class Start:
    """Where a run starts: the checkpoint it resumes (None: step 0), its record and history."""

    checkpoint: str | None
    record: dict[str, Any]
    history: list[dict[str, Any]]


def begin(settings: RunSettings, new: Mapping[str, Any], args: Any | None = None) -> Start:
    """Check the output folder and, with --resume, the record against `new`; nothing is written.

    A finished or started run without --resume is refused; with --resume, a setting that differs
    from the record and may not change (`MAY_CHANGE`) is refused, naming it, both values and the fix.
    A TRL field given on one side only is compared with that side's full TRL config (`args` now,
    the recorded config before): `--learning-rate 1e-4` against TRL's 1e-6 on record.
    """
    out = settings.output_dir
    checkpoint = run.check_output(out, settings.resume)
    old = read_record(out) if settings.resume else None
    if old is None:
        return Start(checkpoint, dict(new), [])
    now_config = to_jsonable(args.to_dict()) if args is not None else {}
    before, now = _comparable(old), _comparable(new)
    for one, other, config in ((before, now, old.get(settings.config_key)), (now, before, now_config)):
        for key in set(other["trl"]) - set(one["trl"]):  # given on one side only: that side's TRL value
            if isinstance(config, Mapping) and key in config:
                one["trl"][key] = config[key]
    if before["trainer"] != now["trainer"]:  # every other setting differs too: say the one that matters
        raise _refusal(differences({"trainer": before["trainer"]}, {"trainer": now["trainer"]}), settings, out)
    if "data_fingerprint" in before and "data_fingerprint" in now:  # the content decides, not where it is
        may_change = MAY_CHANGE | {"data"}
    else:  # a record written before the fingerprint: the path stands in for the content
        before.pop("data_fingerprint", None), now.pop("data_fingerprint", None)
        may_change = MAY_CHANGE
    refused = differences(before, now, may_change=may_change)
    if refused:
        raise _refusal(refused, settings, out)
    history = [h for h in old.get("history") or [] if isinstance(h, dict)]
    changed = [c for c in differences(before, now) if c.key != "resume"]
    history.append({"resumed_from": Path(checkpoint).name if checkpoint else None,
                    "changed": {c.key: {"was": c.old, "now": c.new} for c in changed}})
    return Start(checkpoint, dict(new), history)


def _comparable(rec: Mapping[str, Any]) -> dict[str, Any]:
    """A record's settings as one mapping: the trainer, r1's settings and the data's fingerprint."""
    # a record written before `trainer` was: its TRL config's key says it (distillation_config: on-policy)
    trainer = rec.get("trainer") or next((k.removesuffix("_config").replace("distillation", "on-policy")
                                          for k in rec if k.endswith("_config")), None)
    out = {"trainer": trainer, **rec["r1"]}
    out["trl"] = dict(out.get("trl") or {})
    data = rec.get("data")
    if isinstance(data, Mapping) and data.get("sha256"):
        out["data_fingerprint"] = f"{data.get('records')} records, sha256 {str(data['sha256'])[:12]}"
    return out


def _refusal(changes: list[Change], settings: RunSettings, out: Path) -> OutputError:
    flags = {field_: flag for flag, field_ in settings.FLAG_FIELDS.items() if flag != "output"}
    named = []
    for c in changes:
        name = c.key.removeprefix("trl.")
        if name in flags and c.key.startswith("trl."):
            name = f"{name} (--{flags[name].replace('_', '-')})"
        named.append(Change(name, c.old, c.new))
    settings_ = ", ".join(dict.fromkeys(c.key.removeprefix("trl.").split(".")[0] for c in changes))
    return mismatch(named, what=f"the run in {out}",
                    fix=f"to continue this run, give it the settings on record in {out / run.CONFIG_FILE} "
                        f"(drop the flag or recipe line that changes {settings_}); for another run use "
                        f"another -o, or start over: remove {out} and run without --resume")


def write_record(output_dir: Path, start: Start, *, args: Any | None, config_key: str) -> None:
    """r1_config.json: the record, the TRL config the trainer runs with, the process count, the history."""
    from r1cli import __version__

    from r1cli.files import write_json

    data: dict[str, Any] = dict(start.record)
    if args is not None:
        data["processes"] = args.world_size
        data[config_key] = to_jsonable(args.to_dict())
    if start.history:
        data["history"] = start.history
    data["versions"] = {"r1cli": __version__, **run.versions()}
    write_json(output_dir / run.CONFIG_FILE, to_jsonable(data))


def one_run(train: Callable[..., run.RunResult]) -> Callable[..., run.RunResult]:
    """`train(settings, …)` holding the run folder's lock (`one_writer`): in rank 0 only, and not in
    the ranks of r1's own launch (given the parent's `record`), whose parent holds it."""

    @functools.wraps(train)
    def locked(settings: RunSettings, *args: Any, **options: Any) -> run.RunResult:
        rank = options.get("record") is not None or os.environ.get("RANK", "0") != "0"
        with one_writer(settings, rank=rank):
            return train(settings, *args, **options)

    return locked


@contextmanager
def one_writer(settings: RunSettings, *, rank: bool = False) -> Iterator[None]:
    """Hold the run folder's lock (OUTPUT.lock beside it) while this process trains: a second run
    into the same folder is refused at once. The ranks of a launch run under their parent's lock."""
    if rank:
        yield
        return
    from r1cli.files import exclusive, lock_file

    with exclusive(lock_file(settings.output_dir), what=str(settings.output_dir)):
        yield


# ---- several processes -----------------------------------------------------------------------------


@dataclass
class Launch:
    """What the ranks of a launched run get: their settings (the data as a file where it came from
    stdin), the record the parent checked, and that file's rows to write once the check passed."""

    settings: RunSettings
    record: dict[str, Any]
    args: Any  # the TRL config, as checked here
    data_file: str | None = None
    data_rows: list[dict[str, Any]] | None = None


def launch(settings: RunSettings, *, quiet: bool = False) -> int:
    """Check data, settings and the resume rule in this process, then run `settings.num_processes`
    ranks under `accelerate launch`; their exit status."""
    from r1cli.files import write_atomic, write_json
    from r1cli.jsonl import dumps

    with one_writer(settings):
        plan = settings.plan_launch()
        begin(settings, plan.record, plan.args)  # a refused resume fails here, before anything is written
        if plan.data_file is not None:
            write_atomic(plan.data_file, "".join(dumps(r) for r in plan.data_rows or ()))
        path = write_json(settings.output_dir / LAUNCH_FILE, {"trainer": settings.TRAINER, "record": plan.record,
                                                              "settings": plan.settings.to_json()})
        processes = getattr(settings, "num_processes", 1)
        try:
            return run.run_launch(run.launch_command(WORKER_MODULE, path, processes, run.free_port(), quiet=quiet),
                                  processes)
        finally:
            path.unlink(missing_ok=True)


def read_launch(path: str | Path) -> tuple[RunSettings, dict[str, Any]]:
    """A rank's settings and the run's record, from the launch file."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    settings = settings_class(data["trainer"]).from_json(data["settings"])
    return settings, data["record"]


def ranks_settings(settings: TrainSettings, **changes: Any) -> TrainSettings:
    """A rank's settings: one process of N (`accelerate launch` starts the others)."""
    return replace(settings, num_processes=1, **changes)


# ---- the summary ---------------------------------------------------------------------------------


def summary_line(result: run.RunResult, stats: str) -> str:
    """`trained 2 steps in 3.1 s (1.55 s/step); loss 0.5; model saved to run`."""
    per_step = result.seconds / max(result.steps - result.first_step, 1)
    resumed = f", resumed from {result.resumed_from}" if result.resumed_from else ""
    steps = f"{result.steps:,} step{'s' if result.steps != 1 else ''}"
    return (f"trained {steps} in {result.seconds:,.1f} s ({per_step:.2f} s/step{resumed}); "
            f"{stats or 'no metrics'}; model saved to {result.output_dir}")


def fit(settings: RunSettings, trainer: Any, start: Start, args: Any, *, lora: tuple[int, int] | None = None,
        last_key: str = "loss", close: Callable[[], None] | None = None) -> run.RunResult:
    """Record the run (rank 0), train from the start's checkpoint, save the model."""
    try:
        if trainer.accelerator.is_main_process:
            write_record(settings.output_dir, start, args=args, config_key=settings.config_key)
        return run.fit(trainer, settings.output_dir, start.checkpoint, lora, last_key=last_key)
    finally:
        if close is not None:
            close()
