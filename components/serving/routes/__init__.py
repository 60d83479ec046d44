"""The serving API's routers, one module per surface (``/v1``, ...)."""
