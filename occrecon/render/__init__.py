"""occrecon.render."""
