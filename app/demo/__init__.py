"""The embedded cluster: a Kubernetes-API-compatible local server and the simulator behind `hyperdesk demo`."""
