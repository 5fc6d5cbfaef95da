"""Model pulls over HTTP (admins): the catalogue, starting and cancelling pulls, their list."""
