"""One module per ``vigil`` sub-command."""
