"""SSH and Kubernetes port forwarding, IDE launchers."""
