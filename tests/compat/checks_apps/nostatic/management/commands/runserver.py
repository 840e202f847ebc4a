from django.contrib.staticfiles.management.commands.runserver import (
    Command as StaticfilesRunserver,
)


class Command(StaticfilesRunserver):
    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.set_defaults(use_static_handler=False)
