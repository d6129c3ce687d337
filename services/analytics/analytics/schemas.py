"""How the analytics service writes its data on the wire (nothing yet)."""
