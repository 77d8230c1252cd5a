"""The worker process: `python -m scheduler` runs the fixed sweep jobs (never inside web
processes, where every forked worker would run its own copy)."""
