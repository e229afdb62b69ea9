"""Local harness: the S3 emulator, a versioned bucket, the real registry and real skopeo pushes.

Used by the integration tests, ``make demo`` and ``make bench``. Everything runs on 127.0.0.1 on free
ports, and every process it starts is stopped by PID when the harness closes — also on failure or
Ctrl-C. It is its own distribution (``tools/pyproject.toml``), installed into the dev venv only:
neither regvault's wheel nor the Lambda layer contains it.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository (tools/harness/__init__.py)
