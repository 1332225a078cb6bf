"""occrecon.facemodel."""
