"""Readers yield raw messages with their origin and learn when each is done."""
