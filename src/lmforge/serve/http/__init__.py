"""The HTTP API: the app, the one error mapping, the dependencies every route shares and one
router per family of routes (native, OpenAI-compatible, tasks, health and admin)."""
