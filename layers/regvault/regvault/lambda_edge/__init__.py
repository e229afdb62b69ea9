"""What the Lambda handlers call: their settings and events (pydantic) and one use case per handler,
shared with the CLI.
"""
