"""The HTTP surface (aiohttp): REST under /api/v1 derived from the registry, chat over SSE, the web
chat page and an OpenAI-compatible façade."""
