from channels_app.management.commands.runserver import Command as BaseRunserver


class Command(BaseRunserver):
    help = "channels_app's runserver, with a project's own additions."
