"""The SQL query layer over the log store: one module per domain, each taking a LogStore and returning
small DataFrames. A different backend replaces this package, not the app."""
