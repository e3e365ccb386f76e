"""MLflow access, downsampling and smoothing of metric histories."""
