"""The dashboard: the single-page app of ``ui/``, built into ``static/`` and served at ``/ui``."""
