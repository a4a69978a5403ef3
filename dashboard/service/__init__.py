"""Long-running endpoints a front door serves: the Prometheus metrics exporter of `vigil metrics`.

A front door like the app and the CLI: may import every domain; no domain imports it."""
