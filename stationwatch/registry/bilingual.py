"""Messages said in both languages of the spreadsheets: the file's header language picks one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Language = Literal["zh", "en"]


@dataclass(frozen=True, slots=True)
class Said:
    """One message, in Chinese and in English."""

    zh: str
    en: str

    def in_(self, language: Language) -> str:
        return self.zh if language == "zh" else self.en


class BilingualError(ValueError):
    """Bad input whose message is given in both languages."""

    def __init__(self, said: Said) -> None:
        super().__init__(said.en)
        self.said = said
