"""The writer module: tasks, content, images and content maps. Importing it registers its actions."""

from tools.writer import content, images, maps, tasks

__all__ = ["content", "images", "maps", "tasks"]
