"""Model providers: OpenAI-compatible chat, image APIs (OpenAI, Runware) and the offline provider."""
