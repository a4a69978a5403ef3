"""Plotly figure builders: DataFrames in, figures out, no Streamlit; shared by the pages and the report.

May import: the shared ground only, so every layer that draws (pages, governance reports) can use them."""
