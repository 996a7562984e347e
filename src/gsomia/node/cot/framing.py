"""Events off a CoT TCP stream: CoT XML events one after the other, or TAK protocol stream
messages (0xBF, a varint length, the message).

An XML event ends where its root element ends, as an XML parser reads it: ``</event>`` inside
a CDATA section, a comment, a processing instruction or an attribute value is text of the
event, never its end (otherwise text in ``<remarks>`` could end the event early and have
what follows it taken as a separate track). A stream that is not well-formed XML is refused
whole: after an error there is no telling where the next event would start.
"""

from __future__ import annotations

from xml.parsers import expat

from gsomia.errors import InvalidInput
from gsomia.interop.cot import MAX_EVENT_BYTES

__all__ = ["TAK_MAGIC", "CotStream", "split_stream"]

TAK_MAGIC = 0xBF


class _RootClosed(Exception):
    """Raised inside the parser when the root element ends: the event is complete."""


class CotStream:
    """One TCP stream's events as its bytes arrive (:meth:`feed`); what is not yet a whole
    event waits in :attr:`pending`. Each byte is parsed once or twice, however the stream is
    cut into reads."""

    def __init__(self) -> None:
        self.pending = bytearray()
        self._parser: expat.XMLParserType | None = None
        self._fed = 0  # bytes of ``pending`` already given to the parser
        self._depth = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; every event they complete, in order.

        Raises:
            InvalidInput: XML that is not well-formed (or declares a DTD), an event over the
                size limit, or a TAK protocol length that does not read.
        """
        self.pending += data
        out: list[bytes] = []
        while True:
            event = self._next()
            if event is None:
                return out
            out.append(event)

    def _next(self) -> bytes | None:
        if self._parser is None:
            start = 0
            while start < len(self.pending) and self.pending[start : start + 1].isspace():
                start += 1
            del self.pending[:start]
            if not self.pending:
                return None
            if self.pending[0] == TAK_MAGIC:
                return self._tak()
            self._start_xml()
        return self._xml()

    def _start_xml(self) -> None:
        parser = expat.ParserCreate()
        parser.StartDoctypeDeclHandler = _no_doctype
        parser.StartElementHandler = self._opened
        parser.EndElementHandler = self._closed
        self._parser, self._fed, self._depth = parser, 0, 0

    def _opened(self, name: str, attributes: object) -> None:
        self._depth += 1

    def _closed(self, name: str) -> None:
        self._depth -= 1
        if self._depth == 0:
            raise _RootClosed

    def _xml(self) -> bytes | None:
        parser = self._parser
        assert parser is not None  # noqa: S101 - set by _next just before
        chunk = bytes(self.pending[self._fed :])
        self._fed = len(self.pending)
        try:
            parser.Parse(chunk, False)
        except _RootClosed:
            end = parser.CurrentByteIndex  # the byte after the root's end tag
            self._parser = None
            if not 0 < end <= len(self.pending) or self.pending[end - 1] != ord(">"):
                raise InvalidInput("a CoT event whose end cannot be found") from None
            event = bytes(self.pending[:end])
            del self.pending[:end]
            return event
        except expat.ExpatError as e:
            self._parser = None
            raise InvalidInput(f"a CoT stream that is not well-formed XML: {e}") from e
        except (ValueError, LookupError) as e:  # an encoding expat cannot read
            self._parser = None
            raise InvalidInput(f"a CoT stream in an encoding that cannot be read: {e}") from e
        if len(self.pending) > MAX_EVENT_BYTES:
            raise InvalidInput("a CoT event over the size limit")
        return None

    def _tak(self) -> bytes | None:
        length, shift, i = 0, 0, 1
        while i < len(self.pending):
            if i > 10:  # a varint is at most 10 bytes; 0x80s would add nothing for ever
                raise InvalidInput("a TAK protocol message length longer than a varint")
            b = self.pending[i]
            length |= (b & 0x7F) << shift
            i += 1
            if length > MAX_EVENT_BYTES:
                # Also what ends a length that never ends: its bytes only add to it.
                raise InvalidInput("a TAK protocol message over the size limit")
            if not b & 0x80:
                break
            shift += 7
        else:
            return None  # the length is not all here yet
        if len(self.pending) < i + length:
            return None
        message = bytes(self.pending[: i + length])
        del self.pending[: i + length]
        return message


def _no_doctype(*_: object) -> None:
    raise InvalidInput("a CoT event with a DTD")


def split_stream(buffer: bytearray) -> list[bytes]:
    """Take every complete event off the front of a stream buffer; the rest stays in it (a
    stream read piece by piece is better fed to one :class:`CotStream`).

    Raises:
        InvalidInput: as :meth:`CotStream.feed`.
    """
    stream = CotStream()
    events = stream.feed(bytes(buffer))
    buffer[:] = stream.pending
    return events
