"""devcrew_templates: the TDD, feature-development and bug-fix workflow templates.

A plugin like any other: registered through the ``devcrew`` entry-point group, it
contributes :class:`~devcrew_core.plugin_types.TemplateEntry` records.
"""
