"""Developer scripts (`make bench`, `make bench-auth`); not shipped with the app."""
