"""Evaluation tasks and suites: a model over benchmark data -> a results table (``affectreason eval``)."""
