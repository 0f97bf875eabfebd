"""GKD (Agarwal et al. 2024) on TRL's `GKDTrainer`: SFT in which the student also learns the
teacher's next-token distributions, on its own samples a `lmbda` share of the steps.

It is SFT's data, templates, run folder and resume (`r1cli.training.sft`) with another trainer:
`r1 sft` with `method: gkd` (and `teacher`) under `r1:` in the recipe, or `r1 distill --method gkd`.
TRL's ChatML collator reads whole conversations, so the rows are chat messages, and both models
must share a tokenizer (the divergence is taken token by token), checked before either loads.

    from r1cli.training.sft import SFTSettings, train
    train(SFTSettings.build({"method": "gkd", "teacher": "tiny", "model": "tiny", "data": "kept.jsonl", "output": "run"}))
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from r1cli.errors import R1Error
from r1cli.training import run
from r1cli.training.sft import Example, Prepared, SFTSettings, no_bars


@dataclass(frozen=True, kw_only=True)
class GKDSettings(SFTSettings):
    """SFT's settings with the `teacher`, and GKDConfig's fields (`lmbda`, `beta`, `max_new_tokens`, …) in `trl`."""

    method: str = "gkd"

    TRAINER: ClassVar[str] = "gkd"
    WHAT: ClassVar[str] = "GKD"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.teacher:
            raise R1Error("--method gkd needs a teacher model", hint="give --teacher MODEL")

    @classmethod
    def config_class(cls) -> type:
        return gkd_classes()[0]

    def config(self) -> Any:
        if self.trl.get("packing"):
            raise R1Error("--packing does not apply to --method gkd (it trains on whole conversations)")
        return super().config()

    def rows(self, examples: list[Example], template: str, told: bool) -> list[dict[str, Any]]:
        if template != "chat":
            raise R1Error(f"--method gkd trains on chat messages; template '{template}' gives plain text",
                          hint="use --template chat with a student that has a chat template, or --method sft")
        check_shared_vocabulary(self.teacher or "", self.model)
        return [{"messages": r["prompt"] + r["completion"]} for r in super().rows(examples, template, told)]

    def trainer(self, prepared: Prepared, args: Any, callbacks: Iterable[Any], tokenizer: Any) -> Any:
        return build_trainer(self, prepared, args, callbacks, tokenizer)


def gkd_classes() -> tuple[type, type]:
    """TRL's (GKDConfig, GKDTrainer): in `trl.experimental.gkd` since TRL 1.0, top-level `trl` before."""
    import warnings

    with warnings.catch_warnings():
        # The "APIs here are unstable" notice of trl.experimental: r1 pins what it uses in its tests.
        warnings.filterwarnings("ignore", message=".*trl.experimental.*")
        try:
            from trl.experimental.gkd import GKDConfig, GKDTrainer
        except ImportError:
            from trl import GKDConfig, GKDTrainer  # type: ignore[attr-defined,no-redef]
    return GKDConfig, GKDTrainer


def build_trainer(settings: GKDSettings, prepared: Prepared, args: Any, callbacks: Iterable[Any],
                  tokenizer: Any) -> Any:
    """A GKDTrainer over the prepared conversations, with the teacher loaded in float32 (as the student trains)."""
    from r1cli.models import load_model, resolve_model

    no_bars()
    _, trainer_cls = gkd_classes()
    teacher = load_model(settings.teacher or "", dtype="float32")
    trainer = trainer_cls(model=resolve_model(settings.model), teacher_model=teacher, args=args,
                          train_dataset=run.dataset(prepared.rows, what="SFT records",
                                                    hint="give every record the same shape (chat messages)"),
                          processing_class=tokenizer, callbacks=list(callbacks),
                          peft_config=run.lora_config(settings.lora))
    return run.quiet_trainer(trainer)


def check_shared_vocabulary(teacher: str, student: str) -> None:
    """Refuse a teacher and a student whose tokenizers (or embedding sizes) differ: logit
    distillation (GKD, on-policy) compares their next-token distributions token by token.
    Tokenizers and configs only: no model loads."""
    from r1cli.models import load_tokenizer, resolve_model

    t_vocab, s_vocab = load_tokenizer(teacher).get_vocab(), load_tokenizer(student).get_vocab()
    if t_vocab != s_vocab:
        only_t = sorted(set(t_vocab) - set(s_vocab))
        only_s = sorted(set(s_vocab) - set(t_vocab))
        moved = sum(1 for tok, i in t_vocab.items() if tok in s_vocab and s_vocab[tok] != i)
        example = (f"'{only_s[0]}' only in the student" if only_s else f"'{only_t[0]}' only in the teacher"
                   if only_t else f"{moved:,} tokens with other ids")
        raise R1Error(f"the teacher ({teacher}) and the student ({student}) do not share a tokenizer: "
                      f"{len(t_vocab):,} vs {len(s_vocab):,} tokens ({example})",
                      hint="--method gkd compares the two models' next-token distributions token by token; use "
                           "--method sft (it trains on the teacher's text), or a student of the teacher's family")
    from transformers import AutoConfig

    sizes = [AutoConfig.from_pretrained(resolve_model(m)).get_text_config().vocab_size for m in (teacher, student)]
    if sizes[0] != sizes[1]:
        raise R1Error(f"the teacher ({teacher}) and the student ({student}) share a tokenizer but their output "
                      f"layers differ: vocab_size {sizes[0]:,} vs {sizes[1]:,}",
                      hint="--method gkd needs equal vocab_size in both configs; use --method sft")
