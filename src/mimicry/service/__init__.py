"""The guarded fine-tuning service: an OpenAI-compatible API with the mimic guard inside every job.

`app` (routes), `auth` (API keys, organisations), `db` (SQLAlchemy models and migrations),
`storage` (content-addressed files), `validation` (upload checks), `gate` (the guard a job runs),
`worker` (leases, heartbeats, resume), `chat` (completions on base and released models).
Importing this package stays light; FastAPI, SQLAlchemy and torch load in the modules that need them.
"""
