"""What every page is handed: settings, the shared service, what is indexed, the other pages."""

from __future__ import annotations

from dataclasses import dataclass, field

from streamlit.navigation.page import StreamlitPage

from indexing.settings import Settings
from indexing.store import IndexInfo
from rag.service import AnswerService
from rag.settings import RagSettings


@dataclass
class Context:
    """What every page needs: settings, the shared service, what is indexed, the pages."""

    settings: Settings
    rag: RagSettings
    service: AnswerService
    info: IndexInfo
    pages: dict[str, StreamlitPage] = field(default_factory=dict)

    @property
    def has_index(self) -> bool:
        """Whether a published index holds articles."""
        return self.info.has_index
