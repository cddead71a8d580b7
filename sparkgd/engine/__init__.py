"""The distributed engine: cached blocks, the per-iteration job, resident tasks, the loop over Spark."""
