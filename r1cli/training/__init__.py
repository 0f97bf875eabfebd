"""Training: thin layers over TRL's trainers (`grpo`), with YAML recipes (`config`).

Nothing here imports torch, transformers or TRL at import time.
"""
