"""Citation checking: every citation in an answer must name a passage that was in the prompt.

The model may cite as ``[PMID:123]``, ``[PMID 123; PMID 456]``, ``[123]``, ``(PMID: 123)``,
``PMID 123`` in prose, or by passage number (``[2]``, ``[1-3]``). Each is mapped to a PMID of the
context; valid ones are rewritten as ``[PMID:123]``, anything else is removed and reported.
Works on a stream: text is held back only while it could still be an unfinished citation, so
a fabricated PMID never reaches the screen.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# A bracketed or parenthesised group (a possible citation list), or a bare "PMID 123".
_CANDIDATE = re.compile(
    r"\[([^\[\]\n]{1,120})\]|\(([^()\n]{1,120})\)|\bPMIDs?\s*[:#]?\s*(\d{1,9})\b", re.IGNORECASE
)
_BARE = re.compile(r"\bPMIDs?\s*[:#]?\s*(\d{1,9})\b", re.IGNORECASE)
_ITEM = re.compile(r"^(PMIDs?\s*[:#]?\s*)?(\d{1,9})$", re.IGNORECASE)
_RANGE = re.compile(r"^(\d{1,2})\s*[-–]\s*(\d{1,2})$")
_SPLIT = re.compile(r"\s*(?:[,;&]|\band\b)\s*", re.IGNORECASE)
# The end of the buffer may be the start of "PMID 12345": hold it until it is complete.
_TAIL = re.compile(r"\bP(?:M(?:I(?:D(?:s?\s*[:#]?\s*\d*)?)?)?)?$", re.IGNORECASE)
_SPACE_BEFORE_PUNCT = re.compile(r"[ \t]+([.,;:!?])")
_MULTI_SPACE = re.compile(r"[ \t]{2,}")
_EMPTY_GROUP = re.compile(r"\[\s*\]|\(\s*\)")
WINDOW = 121  # longest group we wait for; an opener older than this is plain text


def tidy(text: str) -> str:
    """Close the gaps that removed citations leave (``"fever ."`` → ``"fever."``)."""
    text = _EMPTY_GROUP.sub("", text)
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    return _MULTI_SPACE.sub(" ", text)


class CitationFilter:
    """Rewrites valid citations, removes the others, and records both.

    Args:
        context_pmids: PMIDs of the passages in the prompt, in prompt order (passage
            numbers refer to this order).
    """

    def __init__(self, context_pmids: Sequence[str]) -> None:
        self.context = list(dict.fromkeys(context_pmids))
        self.allowed = set(self.context)
        self.cited: list[str] = []  # valid PMIDs, in order of first citation
        self.removed: list[str] = []  # what was cited but not in the context, as written
        self._raw = ""  # incoming text not yet checked
        self._out = ""  # checked text held back (trailing whitespace)

    def feed(self, chunk: str) -> str:
        """Take generated text; return what can be shown now."""
        self._raw += chunk
        hold = self._hold_from(self._raw)
        ready, self._raw = self._raw[:hold], self._raw[hold:]
        return self._emit(self._check(ready), final=False)

    def finish(self) -> str:
        """Flush everything held back at the end of the stream."""
        ready, self._raw = self._raw, ""
        return self._emit(self._check(ready), final=True)

    def clean(self, text: str) -> str:
        """Check a whole text at once (equals feeding it and finishing)."""
        return (self.feed(text) + self.finish()).strip()

    # -- internals ---------------------------------------------------------------------------

    def _emit(self, checked: str, final: bool) -> str:
        pending = tidy(self._out + checked)
        if final:
            self._out = ""
            return pending
        stripped = pending.rstrip(" \t")
        self._out = pending[len(stripped) :]
        return stripped

    @staticmethod
    def _hold_from(raw: str) -> int:
        hold = len(raw)
        start = max(0, len(raw) - WINDOW)
        for opener, closer in (("[", "]"), ("(", ")")):
            position = raw.rfind(opener, start)
            while position != -1 and closer not in raw[position:]:
                hold = min(hold, position)
                position = raw.rfind(opener, start, position)
        tail = _TAIL.search(raw)
        if tail:
            hold = min(hold, tail.start())
        return hold

    def _check(self, text: str) -> str:
        return _CANDIDATE.sub(self._replace, text)

    def _replace(self, match: re.Match[str]) -> str:
        bracket, paren, bare = match.group(1), match.group(2), match.group(3)
        if bare is not None:
            return self._render([(bare, True)], match.group(0))
        inner = bracket if bracket is not None else paren
        items = self._items(inner)
        explicit = items is not None and any(flag for _, flag in items)
        if items is None or (paren is not None and not explicit):
            # Not a citation list ("(n = 45)", "[see text]"): still check PMIDs inside it.
            checked = _BARE.sub(lambda m: self._render([(m.group(1), True)], m.group(0)), inner)
            return f"[{checked}]" if bracket is not None else f"({checked})"
        return self._render(items, match.group(0))

    @staticmethod
    def _items(inner: str) -> list[tuple[str, bool]] | None:
        """``[(number, has PMID prefix)]`` if ``inner`` is a list of citations, else None."""
        items: list[tuple[str, bool]] = []
        for part in _SPLIT.split(inner.strip()):
            if not part:
                continue
            item = _ITEM.match(part)
            span = _RANGE.match(part)
            if item:
                items.append((item.group(2), bool(item.group(1))))
            elif span and int(span.group(1)) <= int(span.group(2)):
                first, last = int(span.group(1)), int(span.group(2))
                items.extend((str(n), False) for n in range(first, last + 1))
            else:
                return None
        return items or None

    def _resolve(self, number: str, explicit: bool) -> str | None:
        if number in self.allowed:
            return number
        if not explicit and len(number) <= 2 and 1 <= int(number) <= len(self.context):
            return self.context[int(number) - 1]  # cited by passage number
        return None

    def _render(self, items: list[tuple[str, bool]], original: str) -> str:
        kept: list[str] = []
        for number, explicit in items:
            pmid = self._resolve(number, explicit)
            if pmid is None:
                if number not in self.removed:
                    self.removed.append(number)
            elif pmid not in kept:
                kept.append(pmid)
        for pmid in kept:
            if pmid not in self.cited:
                self.cited.append(pmid)
        return "".join(f"[PMID:{pmid}]" for pmid in kept)


# -- answer sentences ---------------------------------------------------------------------------

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=\S)")
_LEADING_TAGS = re.compile(r"^((?:\[PMID:\d+\]\s*)+)")


def split_sentences(text: str) -> list[str]:
    """Sentences of an answer; a citation written after the full stop stays with its sentence."""
    sentences: list[str] = []
    for line in text.splitlines():
        for part in _SENTENCE.split(line.strip()):
            tags = _LEADING_TAGS.match(part)
            body = part
            if tags and sentences:
                sentences[-1] += " " + tags.group(1).strip()
                body = part[tags.end() :]
            if body.strip():
                sentences.append(body.strip())
    return sentences


class RepetitionGuard:
    """Stops a generator that has started to repeat itself, without showing the repeat.

    Small models fall into loops ("X is a risk factor. X is a risk factor. ..."); sampling
    penalties make loops rarer but not impossible. The guard watches the text sentence by
    sentence: text that could still be the start of an earlier sentence is held back, and when
    a sentence turns out to repeat an earlier one word for word, it is dropped and
    :attr:`stopped` is set, so the caller stops generating.

    Args:
        min_chars: sentences shorter than this may repeat ("Yes.", "No.").
    """

    def __init__(self, min_chars: int = 24) -> None:
        self.min_chars = min_chars
        self.stopped = False
        self.repeated = ""  # the sentence that was repeated
        self._done: set[str] = set()  # finished sentences, normalised
        self._sentence = ""  # the sentence being written
        self._passed = 0  # how much of it was passed on (it cannot be a repeat any more)

    @staticmethod
    def _norm(sentence: str) -> str:
        return " ".join(sentence.split()).lower()

    def _is_repeat(self, sentence: str) -> bool:
        key = self._norm(sentence)
        return self._passed == 0 and len(key) >= self.min_chars and key in self._done

    def _boundary(self) -> re.Match[str] | None:
        # A "sentence" this short is an abbreviation or a bare "Yes.": it joins the next one.
        return next((m for m in _SENTENCE.finditer(self._sentence) if m.start() >= 12), None)

    def feed(self, piece: str) -> str:
        """Take generated text; return what can be passed on now (nothing once stopped)."""
        if self.stopped:
            return ""
        out: list[str] = []
        self._sentence += piece
        while match := self._boundary():
            sentence = self._sentence[: match.end()]
            if self._is_repeat(sentence):
                self.stopped, self.repeated, self._sentence = True, sentence.strip(), ""
                return "".join(out)
            self._done.add(self._norm(sentence))
            out.append(sentence[self._passed :])
            self._sentence, self._passed = self._sentence[match.end() :], 0
        key = self._norm(self._sentence)
        if self._passed or not any(done.startswith(key) for done in self._done):
            # Not the start of any earlier sentence, so never a repeat: let it through.
            out.append(self._sentence[self._passed :])
            self._passed = len(self._sentence)
        return "".join(out)

    def finish(self) -> str:
        """What is still held back at the end of the stream."""
        if self.stopped:
            return ""
        if self._is_repeat(self._sentence):
            self.stopped, self.repeated = True, self._sentence.strip()
            return ""
        held = self._sentence[self._passed :]
        self._sentence, self._passed = "", 0
        return held
