"""occrecon.geometry."""
