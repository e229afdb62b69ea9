"""``regvault repair``: every broken, recoverable image repaired in place in one plan (and, on request,
deleted tags brought back), through the restore core."""
