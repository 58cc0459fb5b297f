"""Users over HTTP: admins manage them; each user reads itself and changes its password."""
