"""`pishkhan faq import|export`: the knowledge base from and to YAML files, on both backends."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from inbox.cli import main
from storage.config import StorageConfig

ROOT = Path(__file__).resolve().parents[2]


def write_config(tmp_path: Path, storage: StorageConfig) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump({"storage": storage.model_dump(by_alias=True, exclude_none=True)}),
        encoding="utf-8",
    )
    return config


async def test_import_export_and_replace(
    storage_config: StorageConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path, storage_config))

    def cli(*args: str) -> int:
        return main(["--config", config, "faq", *args])

    assert await asyncio.to_thread(cli, "import", str(ROOT / "faq.yaml")) == 0
    entries = yaml.safe_load((ROOT / "faq.yaml").read_text(encoding="utf-8"))
    assert f"{len(entries)} created, 0 updated, 0 deleted" in capsys.readouterr().out

    exported = tmp_path / "out.yaml"
    assert await asyncio.to_thread(cli, "export", str(exported)) == 0
    data = yaml.safe_load(exported.read_text(encoding="utf-8"))
    assert [e["question"] for e in data] == [e["question"] for e in entries]
    assert all(isinstance(e["id"], int) for e in data)

    assert await asyncio.to_thread(cli, "export") == 0
    assert yaml.safe_load(capsys.readouterr().out) == data

    small = tmp_path / "small.yaml"
    small.write_text(yaml.safe_dump(data[:2], allow_unicode=True), encoding="utf-8")
    assert await asyncio.to_thread(cli, "import", str(small), "--replace") == 0
    assert f"0 created, 2 updated, {len(data) - 2} deleted" in capsys.readouterr().out


async def test_bad_files_are_refused_and_change_nothing(
    storage_config: StorageConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = str(write_config(tmp_path, storage_config))

    def cli(*args: str) -> int:
        return main(["--config", config, "faq", *args])

    bad = tmp_path / "bad.yaml"
    bad.write_text("- question: Q\n  answer: A\n  language: de\n", encoding="utf-8")
    assert await asyncio.to_thread(cli, "import", str(bad), "--replace") == 2
    err = capsys.readouterr().err
    assert "nothing changed" in err and "entry 1: 'language' must be one of fa, en" in err

    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("- question: caf\xe9\n".encode("latin-1"))
    assert await asyncio.to_thread(cli, "import", str(latin1)) == 2
    assert "cannot read" in capsys.readouterr().err

    assert await asyncio.to_thread(cli, "import", str(tmp_path / "missing.yaml")) == 2
    assert await asyncio.to_thread(cli, "export") == 0
    assert yaml.safe_load(capsys.readouterr().out) == []
