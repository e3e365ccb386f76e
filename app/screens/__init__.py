"""One module per pane or dialog of the TUI."""
