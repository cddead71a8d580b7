"""The batch job's logic (``jobs/train_linear.py`` only calls :func:`sparkgd.job.run.main`)."""
