"""Local harness: the S3 emulator, a versioned bucket, the real registry and real skopeo pushes.

Used by the integration tests and by ``make demo``. Everything runs on 127.0.0.1 on free ports, and
every process it starts is stopped by PID when the harness closes — also on failure or Ctrl-C.
Not part of the Lambda layer.
"""
