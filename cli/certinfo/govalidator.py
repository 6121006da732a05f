"""govalidator.IsURL (the version step builds with), ported to Python's re.

zcrypto uses it to decide which names go into the JSON ``names`` list.
"""

from __future__ import annotations

import re

_URL_IP = (
    r"([1-9][0-9]?|1[0-9][0-9]|2[01][0-9]|22[0-3]|24[0-9]|25[0-5])"
    r"(\.([0-9]{1,2}|1[0-9][0-9]|2[0-4][0-9]|25[0-5])){2}"
    r"(?:\.([0-9][0-9]?|1[0-9][0-9]|2[0-4][0-9]|25[0-5]))"
)
_HEX4 = r"[0-9a-fA-F]{1,4}"
_V4 = r"((25[0-5]|(2[0-4]|1?[0-9])?[0-9])\.){3}(25[0-5]|(2[0-4]|1?[0-9])?[0-9])"
_IPV6 = (
    rf"(({_HEX4}:){{7}}{_HEX4}|({_HEX4}:){{1,7}}:|({_HEX4}:){{1,6}}:{_HEX4}"
    rf"|({_HEX4}:){{1,5}}(:{_HEX4}){{1,2}}|({_HEX4}:){{1,4}}(:{_HEX4}){{1,3}}"
    rf"|({_HEX4}:){{1,3}}(:{_HEX4}){{1,4}}|({_HEX4}:){{1,2}}(:{_HEX4}){{1,5}}"
    rf"|{_HEX4}:((:{_HEX4}){{1,6}})|:((:{_HEX4}){{1,7}}|:)"
    rf"|fe80:(:[0-9a-fA-F]{{0,4}}){{0,4}}%[0-9a-zA-Z]+"
    rf"|::(ffff(:0{{1,4}})?:)?{_V4}|({_HEX4}:){{1,4}}:{_V4})"
)
_U = "a-zA-Z\u00a1-\uffff0-9"
_URL_RE = re.compile(
    r"^((ftp|tcp|udp|wss?|https?)://)?"
    r"([^\t\n\f\r ]+(:[^\t\n\f\r ]*)?@)?"
    rf"(({_URL_IP}|(\[{_IPV6}\])"
    r"|(([a-zA-Z0-9]([a-zA-Z0-9_-]+)?[a-zA-Z0-9]([-.][a-zA-Z0-9]+)*)"
    r"|((www\.)|([a-zA-Z0-9]+([-_.]?[a-zA-Z0-9])*[a-zA-Z0-9]\.[a-zA-Z0-9]+))?)?"
    rf"([{_U}]+(?:--?[{_U}]+)*)(?:\.([a-zA-Z\u00a1-\uffff]+))?))"
    r"\.?(:([0-9]{1,5}))?((/|\?|#)[^\t\n\f\r ]*)?\Z",
    re.ASCII,
)


def is_url(text: str) -> bool:
    if not text or len(text) >= 2083 or len(text.encode()) <= 3 or text.startswith("."):
        return False
    candidate = "http://" + text if ":" in text and "://" not in text else text
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in candidate):
        return False
    _scheme, sep, rest = candidate.partition("://")
    if sep:
        host = re.split(r"[/?#]", rest, maxsplit=1)[0].rpartition("@")[2]
        path = rest[len(host) :] if rest.startswith(host) else ""
    else:
        host, path = "", candidate
    if host.startswith("."):
        return False
    if not host and path and "." not in path:
        return False
    return _URL_RE.match(text) is not None
