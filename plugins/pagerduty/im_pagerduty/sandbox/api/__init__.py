"""REST API v2 routes of the sandbox, and its /_sandbox/ controls."""
