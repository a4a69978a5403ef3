"""The demo workspace: a deterministic credit-risk scenario and its training pipeline.

Reached through `vigil demo` and the training command `python -m dashboard.demo.train`; may import
every domain."""
