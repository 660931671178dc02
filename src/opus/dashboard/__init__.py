"""`opus dashboard`: the web board over the registry (see designs/dashboard.md).

`app.create_app` builds the Starlette application (pages, the JSON API `/api/v1/…`,
Server-Sent Events, the token-guarded actions); `server.DashboardServer` serves it with
uvicorn on a thread of its own, for `opus dashboard` and inside `opus run`.
"""
