"""occrecon.commands."""
