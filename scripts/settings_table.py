"""Print the README's settings table from the typed settings (``python scripts/settings_table.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexing.settings import Settings
from rag.settings import RagSettings


def rows() -> list[str]:
    """One markdown row per setting: variable, default, description."""
    lines = ["| variable | default | what it does |", "|---|---|---|"]
    for model in (Settings, RagSettings):
        for name, field in model.model_fields.items():
            default = field.default
            if isinstance(default, str) and "\n" in default:
                shown = "(see `rag/prompts.py`)"
            elif default is None:
                shown = "unset"
            else:
                shown = f"`{default}`"
            env = f"PUBMED_RAG_{name.upper()}"
            description = (field.description or "").replace("|", "\\|")
            lines.append(f"| `{env}` | {shown} | {description} |")
    return lines


if __name__ == "__main__":
    print("\n".join(rows()))
