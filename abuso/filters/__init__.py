"""Filters drop incidents that do not concern us, and say why."""
