"""The math that needs no running Spark: sampling, gradients, updaters, schedules, the loop's state."""
