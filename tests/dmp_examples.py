"""The official DMP example messages (shared/research/dmp-examples, copied under tests/vectors/dmp/) as
test vectors: where they are and how to read them."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

EXAMPLES = Path(__file__).parent / "vectors" / "dmp"
VIHF_SAMPLES = sorted(path.name for path in EXAMPLES.glob("VIHF_*.xml"))
TD_REQUESTS = sorted(path.name for path in EXAMPLES.glob("TD*_requete.xml"))


def example_bytes(name: str) -> bytes:
    """The message as XML bytes. Two VIHF samples are published in ISO-8859-1 with no encoding declaration
    (not well-formed as UTF-8): they are read as Latin-1. The TD2.1 request is a MIME part: its envelope is
    cut out."""
    data = (EXAMPLES / name).read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        data = data.decode("latin-1").encode("utf-8")
    if data.startswith(b"--"):
        data = data[data.index(b"<soap:Envelope"):data.rindex(b"</soap:Envelope>") + len(b"</soap:Envelope>")]
    return data


def example(name: str) -> etree._Element:
    return etree.fromstring(example_bytes(name))
