"""Apps with a ``runserver`` of their own, for the check on which one wins."""
