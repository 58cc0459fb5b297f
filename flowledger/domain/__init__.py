"""flowledger."""
