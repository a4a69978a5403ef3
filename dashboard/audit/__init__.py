"""The tamper-evident audit trail: a hash chain in the log store that every state change appends to,
anchored by signed checkpoints kept outside the store (``checkpoints``; verified by ``anchor``).

It sits below every domain because every domain writes to it (access included); it knows an actor only
as a name and a role. May import: the shared ground (settings, context, errors) and connectors."""
