"""occrecon.metrics."""
