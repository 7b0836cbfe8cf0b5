"""The AI functions (seed ``ai/functions/``); importing registers their actions."""

from tools.ai.functions import auto_cluster, generate_content, generate_ideas, generate_images

__all__ = ["auto_cluster", "generate_content", "generate_ideas", "generate_images"]
