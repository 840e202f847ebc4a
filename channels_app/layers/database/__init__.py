"""A channel layer stored in the project's own database (PostgreSQL or SQLite).

``BACKEND = "channels_app.layers.database.DatabaseChannelLayer"``; its tables
are the models ``ChannelMessage`` and ``GroupMembership`` (migrations ship
with the app, so ``manage.py migrate`` creates them).
"""

from .backend import ChannelLayerUnavailable
from .layer import DatabaseChannelLayer

__all__ = ["ChannelLayerUnavailable", "DatabaseChannelLayer"]
