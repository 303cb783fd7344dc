"""Processors act on whole reports, in the order the config lists them."""
