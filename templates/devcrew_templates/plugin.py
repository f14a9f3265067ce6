"""Hook implementations of devcrew_templates.

Registered (it appears in ``devcrew plugins``) but contributes no templates yet; the
TDD, feature-development and bug-fix templates arrive with the workflow engine.
"""
