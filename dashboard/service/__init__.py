"""Long-running processes the doors start: the metrics endpoint of `vigil metrics`, the retrain job worker.

A front door like the app and the CLI: may import every domain; no domain imports it."""
