"""Output writers: turn a processed Report into text for a stream (one report at a time).

Each module has ``render(report) -> str``; what it returns is written as is, so a
writer that emits nothing for an invalid report returns "".
"""
