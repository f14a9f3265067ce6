"""Built-in plugins, registered through the ``devcrew`` entry-point group like any other."""
