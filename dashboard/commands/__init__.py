"""One module per `vigil` sub-command (the CLI door), loaded only when its command runs.

A front door: may import every domain, the service and the demo; never the app (ui, pages)."""
