"""Default prompt templates, one ``.txt`` per AI function plus ``system.txt``; ``$name`` placeholders."""
