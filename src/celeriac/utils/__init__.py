"""Small helpers shared by several parts of celeriac (signals: dispatch.py; ending
background asyncio tasks: aio.py)."""
