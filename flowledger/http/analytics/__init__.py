"""Run analytics over HTTP: runs, workflows, steps and agents over a time range."""
