"""How the contacts service writes its data on the wire (nothing yet)."""
