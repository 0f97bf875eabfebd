"""`r1 reject-sample`: keep the correct, readable samples of each prompt as SFT records (R1 §2.3.3).

Every policy option is an `Annotated` alias here, named as the `SelectPolicy` field it sets, so
that a command that runs rejection sampling as one of its stages (`r1 distill`) declares the
same flags and hands them to `policy_from_options` unchanged.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from r1cli.cli._common import (
    InputArg, OutputOpt, QuietOpt, SkipInvalidOpt, SplitOpt, input_total, progress_bar, summary,
)
from r1cli.reject_sampling import DEDUP, FORMATS, REASONS, SelectPolicy, SelectStats

DEFAULTS = SelectPolicy()

CorrectOnlyOpt = Annotated[bool, typer.Option(
    "--correct-only/--no-correct-only",
    help="Keep only records whose rewards.accuracy is 1 (R1's rule; null accuracy is dropped as unverified).")]
MinRewardOpt = Annotated[float | None, typer.Option(
    "--min-reward", metavar="X", help="Keep only records whose total `reward` is at least X.")]
TargetLanguageOpt = Annotated[str | None, typer.Option(
    "--language", metavar="CODE",
    help="Target language of --min-language and --max-mixed (en, zh, …; default: the prompt's language "
         "for --min-language, the CoT's main script for --max-mixed).")]
MinLanguageOpt = Annotated[float | None, typer.Option(
    "--min-language", metavar="SHARE", min=0.0, max=1.0,
    help="Keep only CoTs with at least this share of target-language words (rewards.language when scored, "
         "else computed).")]
MaxTokensOpt = Annotated[int | None, typer.Option(
    "--max-tokens", metavar="N", min=1, help="Drop completions longer than N tokens (completion_tokens).")]
DropTruncatedOpt = Annotated[bool, typer.Option(
    "--drop-truncated/--keep-truncated", help="Drop completions cut at the length limit (finish_reason = length).")]
MaxMixedOpt = Annotated[float, typer.Option(
    "--max-mixed", metavar="SHARE", min=0.0, max=1.0,
    help="Readability: drop CoTs with more than this share of words in another script (1 = off).")]
MaxParagraphWordsOpt = Annotated[int, typer.Option(
    "--max-paragraph-words", metavar="N", min=0,
    help="Readability: drop completions with a paragraph (text between line breaks) of more than N words (0 = off).")]
DropCodeBlocksOpt = Annotated[bool, typer.Option(
    "--drop-code-blocks/--allow-code-blocks",
    help="Readability: drop completions with a fenced code block, unless the record's task is code.")]
DedupOpt = Annotated[str, typer.Option(
    "--dedup", metavar="|".join(DEDUP),
    help="Within a prompt: drop exact repeats (whitespace aside), also near ones (--near-threshold), or none.")]
NearThresholdOpt = Annotated[float, typer.Option(
    "--near-threshold", metavar="SIM", min=0.0, max=1.0,
    help="--dedup near: word-trigram Jaccard similarity from which a sample repeats a better one.")]
MaxPerPromptOpt = Annotated[int | None, typer.Option(
    "--max-per-prompt", metavar="K", min=1, help="Keep at most K samples per prompt: highest reward, then shortest.")]
KeepThinkOpt = Annotated[bool, typer.Option(
    "--keep-think/--strip-think", help="Keep <think>…</think> in the completion, or only the text after it.")]
FormatOpt = Annotated[str, typer.Option(
    "--format", metavar="|".join(FORMATS),
    help="Output: prompt + completion (every other key kept), or messages (the prompt's chat messages + "
         "the assistant's completion).")]

# The policy options, named as the parameters of `reject_sample_cmd` and the fields of SelectPolicy.
POLICY_OPTIONS = (
    "correct_only", "min_reward", "language", "min_language", "max_tokens", "drop_truncated", "max_mixed",
    "max_paragraph_words", "drop_code_blocks", "dedup", "near_threshold", "max_per_prompt", "keep_think", "format",
)


def policy_from_options(**opts: Any) -> SelectPolicy:
    """The SelectPolicy of the command-line options (named as in `POLICY_OPTIONS`; those left out keep R1's defaults).

    `--max-paragraph-words 0` and `--max-mixed 1` switch their filter off. A bad value is a
    usage error (exit 2) naming the flag.
    """
    unknown = set(opts) - set(POLICY_OPTIONS)
    if unknown:
        raise TypeError(f"not reject-sample options: {', '.join(sorted(unknown))}")
    if opts.get("max_paragraph_words") == 0:
        opts["max_paragraph_words"] = None
    if opts.get("max_mixed") is not None and opts["max_mixed"] >= 1.0:
        opts["max_mixed"] = None
    try:
        return SelectPolicy(**opts)
    except ValueError as exc:
        name = str(exc).split()[0]
        flag = "--" + name.replace("_", "-") if name in POLICY_OPTIONS else None
        raise typer.BadParameter(str(exc), param_hint=flag) from None


def reject_sample_cmd(
    path: InputArg = "-",
    correct_only: CorrectOnlyOpt = DEFAULTS.correct_only,
    min_reward: MinRewardOpt = DEFAULTS.min_reward,
    language: TargetLanguageOpt = DEFAULTS.language,
    min_language: MinLanguageOpt = DEFAULTS.min_language,
    max_tokens: MaxTokensOpt = DEFAULTS.max_tokens,
    drop_truncated: DropTruncatedOpt = DEFAULTS.drop_truncated,
    max_mixed: MaxMixedOpt = DEFAULTS.max_mixed if DEFAULTS.max_mixed is not None else 1.0,
    max_paragraph_words: MaxParagraphWordsOpt = DEFAULTS.max_paragraph_words or 0,
    drop_code_blocks: DropCodeBlocksOpt = DEFAULTS.drop_code_blocks,
    dedup: DedupOpt = DEFAULTS.dedup,
    near_threshold: NearThresholdOpt = DEFAULTS.near_threshold,
    max_per_prompt: MaxPerPromptOpt = DEFAULTS.max_per_prompt,
    keep_think: KeepThinkOpt = DEFAULTS.keep_think,
    format: FormatOpt = DEFAULTS.format,
    skip_invalid: SkipInvalidOpt = False,
    split: SplitOpt = None,
    output: OutputOpt = "-",
    quiet: QuietOpt = False,
) -> None:
    """Keep the correct, readable samples of each prompt, as SFT records (R1's rejection sampling).

    Reads scored records grouped by `id` (a prompt's samples together, as r1 rollout writes
    them) and streams out the kept ones, holding one group in memory. By default (R1's rules):
    accuracy 1, not truncated, no mixed scripts in the CoT, no paragraph over 300 words, no
    stray code block, no exact repeat within the prompt. The summary on stderr counts the
    records dropped for each reason.

    \b
        r1 rollout prompts.jsonl -n 16 | r1 score -r accuracy | r1 reject-sample > sft.jsonl
        r1 reject-sample scored.jsonl --max-per-prompt 4 --dedup near --format messages -o sft.jsonl
        r1 reject-sample scored.jsonl --no-correct-only --min-reward 1.5 --strip-think --max-tokens 2048
    """
    from r1cli.pipeline.stages import Source, select_file

    policy = policy_from_options(**{name: value for name, value in locals().items() if name in POLICY_OPTIONS})
    total = input_total(path)
    result = select_file(Source(path=path, split=split, skip_invalid=skip_invalid), output, policy,
                         progress=lambda _: progress_bar("records", total=total, quiet=quiet))
    line = summary_line(result.stats, result.clock.elapsed, busy=result.clock.busy) + result.clock.waited()
    invalid = len(result.invalid)
    summary(line + (f"; {invalid:,} invalid lines skipped" if invalid else ""), quiet=quiet)


def summary_line(stats: SelectStats, elapsed: float, busy: float | None = None) -> str:
    """`kept 3 of 8 records (2 of 2 prompts with ≥ 1 kept; dropped: incorrect 4, duplicate 1) in 0.1 s`.

    >>> from collections import Counter
    >>> summary_line(SelectStats(groups_in=2, groups_kept=2, records_in=8, records_kept=3,
    ...                          dropped=Counter(duplicate=1, incorrect=4)), 0.05)
    'kept 3 of 8 records (2 of 2 prompts with ≥ 1 kept; dropped: incorrect 4, duplicate 1) in 0.1 s'
    """
    dropped = ", ".join(f"{reason} {stats.dropped[reason]:,}" for reason in REASONS if stats.dropped.get(reason))
    busy = elapsed if busy is None else busy
    rate = f", {stats.records_in / busy:,.0f} records/s" if elapsed >= 1 else ""
    return (f"kept {stats.records_kept:,} of {stats.records_in:,} records ({stats.groups_kept:,} of "
            f"{stats.groups_in:,} prompts with ≥ 1 kept; dropped: {dropped or 'none'}) in {elapsed:.1f} s{rate}")
