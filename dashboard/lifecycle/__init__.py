"""Producing candidates: the registry view, retrain jobs and rules, the candidate gate, mitigation.

May import: learning, monitoring, access, audit, the shared ground and connectors; never governance."""
