"""What production traffic looks like: ingestion, drift, fairness, operations, quality, Evidently report.

May import: access, audit, the shared ground and connectors; never learning, lifecycle or governance."""
