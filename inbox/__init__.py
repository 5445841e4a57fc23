"""The inbox: the aiohttp web app, the agent API, realtime events and the `pishkhan` command."""
