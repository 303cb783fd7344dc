"""Output writers: each module has ``render(report) -> str`` (lines ending in a newline)."""

FORMATS = {
    "text": "abuso.output.text",
    "json": "abuso.output.json",
    "intelmq": "abuso.output.intelmq",
}


def renderer(fmt: str):  # type: ignore[no-untyped-def]
    import importlib

    return importlib.import_module(FORMATS[fmt]).render
