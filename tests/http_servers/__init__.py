"""Real HTTP servers for the end-to-end tests: the apps they serve and a launcher."""
