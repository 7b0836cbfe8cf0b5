"""The planner module: keywords, clusters, content ideas. Importing it registers its actions."""

from tools.planner import clusters, csv_io, ideas, keywords

__all__ = ["clusters", "csv_io", "ideas", "keywords"]
