"""`python -m tests.integration.audited_fusion REPORT.json [fusion flags]`: the fusion service, with a Python
audit hook that records every file the process opens for writing, creates, renames or removes. The
record is written to REPORT.json when the process exits (the one write the hook is not asked about)."""

from __future__ import annotations

import atexit
import json
import os
import sys

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_FILE_CHANGING_EVENTS = {
    "os.mkdir", "os.rename", "os.replace", "os.remove", "os.rmdir", "os.link", "os.symlink", "os.truncate",
    "os.chmod", "os.utime", "shutil.copyfile", "shutil.move", "tempfile.mkstemp", "tempfile.mkdtemp",
}


def main() -> None:
    report, flags = sys.argv[1], sys.argv[2:]
    written: list[str] = []

    def record(event: str, args: tuple) -> None:
        if event == "open":
            path, _mode, open_flags = args
            if not isinstance(path, int) and open_flags & _WRITE_FLAGS:
                written.append(f"open for writing {path}")
        elif event in _FILE_CHANGING_EVENTS:
            written.append(f"{event} {args[0]}")

    def save() -> None:
        text = json.dumps(written)
        with open(report, "w") as file:
            file.write(text)

    sys.addaudithook(record)
    atexit.register(save)
    from fusion_service.__main__ import main as fusion_main

    fusion_main(flags)


if __name__ == "__main__":
    main()
