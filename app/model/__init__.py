"""Pure functions that turn raw Kubernetes objects into the domain rows the panes show."""
