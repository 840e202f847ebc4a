"""Code written the way Channels 4's documentation and tutorial write it, with
only the import prefix changed, run in-process and through real servers."""
