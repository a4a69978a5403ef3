"""The app door's Streamlit pieces: navigation and roles per page, sign-in and sessions, cached state.

A front door: may import every domain and the charts; never the CLI (commands, service)."""
