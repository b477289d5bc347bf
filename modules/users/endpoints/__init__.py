"""HTTP routes of the users module that are ours (fastapi-users provides the others)."""
