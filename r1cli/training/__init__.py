"""Training: thin layers over TRL's trainers (`grpo`, `sft`, `distill`), the run folder they share
(`run`), and YAML recipes (`config`).

Nothing here imports torch, transformers or TRL at import time.
"""
