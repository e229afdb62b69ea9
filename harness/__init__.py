"""Local harness: the S3 emulator, a versioned bucket, the real registry and real skopeo pushes.

Used by the integration tests, ``make demo`` and ``make bench``. Everything runs on 127.0.0.1 on free
ports, and every process it starts is stopped by PID when the harness closes — also on failure or
Ctrl-C. It lives outside the shipped package (neither the wheel nor the Lambda layer contains it).
"""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository

# Child processes started as ``python -m harness.<module>`` must find this package wherever they run.
_paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
if str(ROOT) not in _paths:
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), *_paths) if p)
