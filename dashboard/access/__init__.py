"""Who may do what: roles and the actions each may perform (deny by default), accounts and passwords.

May import: audit, the shared ground and connectors."""
