"""Judging and recording: policies and their metrics, model cards, promotion and approvals, reports.

May import every domain below it (lifecycle, learning, monitoring, access, audit), the shared ground
and connectors; only the front doors (app, ui, pages, cli, commands, service) import governance."""
