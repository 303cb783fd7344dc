"""One module per ``abuso`` sub-command."""
