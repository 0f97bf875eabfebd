"""The data pipeline above the engines and trainers: the stage functions (`stages`: rollout, score,
select) that the CLI and distill share, and distillation (`distill`), which runs them and then trains."""
