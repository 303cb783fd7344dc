"""Incident parsers: each looks at a normalized message and returns a Verdict."""
