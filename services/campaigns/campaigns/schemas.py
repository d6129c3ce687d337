"""How the campaigns service writes its data on the wire (nothing yet)."""
