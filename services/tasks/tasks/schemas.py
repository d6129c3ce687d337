"""How the tasks service writes its data on the wire (nothing yet)."""
