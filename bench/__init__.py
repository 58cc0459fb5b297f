"""Benchmarks: figures of flowledger against its physical limits, each beside a baseline
measured in the same run (``python -m bench all``). They print figures and assert nothing."""
