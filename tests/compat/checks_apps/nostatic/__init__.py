"""An app with Django's WSGI runserver, as whitenoise.runserver_nostatic has."""
