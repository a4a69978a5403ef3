"""Plotly figure builders: DataFrames in, figures out, no Streamlit; shared by the pages and the report.
Also the display rules every view of data shares (``text``: values cut and escaped for display;
``offline``: the no-request policy of the standalone HTML files), kept here as the lowest layer that
the pages, the report, the Evidently report and the CLI all may import.

May import: the shared ground only, so every layer that draws (pages, governance reports) can use them."""
