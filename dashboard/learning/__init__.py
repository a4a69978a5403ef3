"""Active learning: which predictions people should label next, the Label Studio queue and label sync.

May import: monitoring, access, audit, the shared ground and connectors."""
