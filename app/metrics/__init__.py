"""GPU metric sources: dcgm-exporter through the API server proxy or Prometheus, local NVML."""
