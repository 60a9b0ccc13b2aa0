"""inotify tells the event loop when a file is renamed into the watched directory."""

import asyncio
import os
from pathlib import Path

from intercom_sip.admin.watch import DirectoryWatch


def test_a_renamed_file_is_noticed(tmp_path: Path) -> None:
    seen: list[str] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        watch = DirectoryWatch(tmp_path, lambda: seen.append("changed"))
        assert watch.start(loop)
        await asyncio.sleep(0.05)
        assert seen == []
        (tmp_path / "stamp.tmp").write_text("1")
        os.replace(tmp_path / "stamp.tmp", tmp_path / "stamp")
        for _ in range(100):
            await asyncio.sleep(0.01)
            if seen:
                break
        watch.close(loop)

    asyncio.run(scenario())
    assert seen[:1] == ["changed"]


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    async def scenario() -> bool:
        return DirectoryWatch(tmp_path / "nope", lambda: None).start(asyncio.get_running_loop())

    assert asyncio.run(scenario()) is False
