# Copied next to the package by the tests that run manage.py on it.
import sys

from django.core.management import execute_from_command_line

if __name__ == "__main__":
    execute_from_command_line(sys.argv)
