"""`make bench-peers`: our `predict` against real model servers, side by side.

The servers (`kserve_server.py`, `bento_service.py`, the MLflow and MLServer model
folders the harness writes) run inside their own virtual environments under
``bench/.cache/peers/``; keep this package's ``__init__`` free of imports so that those
environments, which hold none of the project's serving dependencies, can import it.
"""
