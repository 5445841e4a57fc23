"""The agent API under /api/v1/: every route declared once, with its role, in `ROUTES`."""
