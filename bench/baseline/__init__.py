"""The comparison baseline for `make bench` (FastAPI + joblib); never imported by serving."""
