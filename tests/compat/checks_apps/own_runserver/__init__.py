"""A project app whose runserver extends channels_app's."""
