"""Who can reach the app: `make run` and Streamlit's config listen on this machine only."""

from __future__ import annotations

import shutil
import subprocess
import tomllib

import pytest

from tests.conftest import ROOT

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def make_run_command(*args: str) -> str:
    # -n prints the recipes (the virtual environment's too, where it is missing), runs nothing.
    done = subprocess.run(
        ["make", "-n", "run", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return " ".join(done.stdout.replace("\\\n", " ").split())


@needs_make
def test_make_run_listens_on_localhost_by_default() -> None:
    command = make_run_command()
    assert "streamlit run app.py" in command
    assert "--server.address 127.0.0.1" in command


@needs_make
def test_make_run_address_opens_it_on_request() -> None:
    assert "--server.address 0.0.0.0" in make_run_command("ADDRESS=0.0.0.0")


def test_streamlit_config_listens_on_localhost() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["address"] == "127.0.0.1"
