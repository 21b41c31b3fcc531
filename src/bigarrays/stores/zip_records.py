"""The zip file format's records, made and read: local headers, central directory records and
end records (zip64 ones where sizes, offsets or counts need them), and the search of a file for
its last complete central directory."""

from __future__ import annotations

import os
import struct
import time
from dataclasses import dataclass

LOCAL_SIG = b"PK\x03\x04"
_CENTRAL_SIG = b"PK\x01\x02"
_END_SIG = b"PK\x05\x06"
_END64_SIG = b"PK\x06\x06"
_LOCATOR_SIG = b"PK\x06\x07"

LOCAL = struct.Struct("<4s5H3I2H")  # 30 bytes
_CENTRAL = struct.Struct("<4s6H3I5H2I")  # 46 bytes
END = struct.Struct("<4s4H2IH")  # 22 bytes
_END64 = struct.Struct("<4sQ2H2I4Q")  # 56 bytes
_LOCATOR = struct.Struct("<4sIQI")  # 20 bytes

#: Sizes and offsets from this value on go into zip64 extra fields (module constants, so that
#: tests can lower them and exercise zip64 without writing gigabytes).
_ZIP64_LIMIT = 0xFFFFFFFF
#: Entry counts from this value on need the zip64 end record.
_ZIP64_COUNT = 0xFFFF
UTF8_FLAG = 0x800
_MADE_BY = (3 << 8) | 45  # Unix, zip 4.5
_FILE_ATTRS = (0o100644 & 0xFFFF) << 16
_SCAN_BLOCK = 1 << 20


@dataclass(slots=True)
class Entry:
    name: bytes  # as stored in the archive
    offset: int  # of the local header
    size: int  # stored (compressed) size
    usize: int
    crc: int
    method: int
    flags: int
    dos_time: int
    dos_date: int
    data_offset: int = -1  # of the bytes; -1 until the local header has been read


def dos_now() -> tuple[int, int]:
    t = time.localtime()
    return (
        (t.tm_hour << 11) | (t.tm_min << 5) | (t.tm_sec // 2),
        (max(t.tm_year, 1980) - 1980) << 9 | (t.tm_mon << 5) | t.tm_mday,
    )


def read_at(fd: int, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes at ``offset`` (fewer only at the end of the file)."""
    parts = []
    while size > 0:
        part = os.pread(fd, min(size, 1 << 30), offset)
        if not part:
            break
        parts.append(part)
        size -= len(part)
        offset += len(part)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _zip64_extra(*values: int) -> bytes:
    return struct.pack(f"<HH{len(values)}Q", 1, 8 * len(values), *values) if values else b""


def local_header(name: bytes, crc: int, size: int, dos_time: int, dos_date: int) -> bytes:
    """The local header of a stored (method 0) entry of ``size`` bytes named ``name``."""
    big = size >= _ZIP64_LIMIT
    extra = _zip64_extra(size, size) if big else b""
    field = 0xFFFFFFFF if big else size
    fixed = LOCAL.pack(LOCAL_SIG, 45 if big else 20, UTF8_FLAG, 0, dos_time, dos_date,
                        crc, field, field, len(name), len(extra))  # fmt: skip
    return fixed + name + extra


def central_record(e: Entry) -> bytes:
    big = [v for v in (e.usize, e.size, e.offset) if v >= _ZIP64_LIMIT]
    extra = _zip64_extra(*big)
    usize, size, offset = (v if v < _ZIP64_LIMIT else 0xFFFFFFFF
                           for v in (e.usize, e.size, e.offset))  # fmt: skip
    fixed = _CENTRAL.pack(_CENTRAL_SIG, _MADE_BY, 45 if big else 20, e.flags, e.method,
                          e.dos_time, e.dos_date, e.crc, size, usize, len(e.name), len(extra),
                          0, 0, 0, _FILE_ATTRS, offset)  # fmt: skip
    return fixed + e.name + extra


def end_records(count: int, cd_offset: int, cd_size: int) -> bytes:
    out = b""
    if count >= _ZIP64_COUNT or cd_offset >= _ZIP64_LIMIT or cd_size >= _ZIP64_LIMIT:
        end64_offset = cd_offset + cd_size
        out = _END64.pack(_END64_SIG, 44, _MADE_BY, 45, 0, 0, count, count, cd_size, cd_offset)
        out += _LOCATOR.pack(_LOCATOR_SIG, 0, end64_offset, 1)
        count, cd_size, cd_offset = 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF
    return out + END.pack(_END_SIG, 0, 0, count, count, cd_size, cd_offset, 0)


def _parse_directory(cd: bytes, shift: int) -> dict[str, Entry] | None:
    """The entries of a central directory (the last of a name wins), or None if it is damaged."""
    entries: dict[str, Entry] = {}
    pos = 0
    while pos < len(cd):
        if pos + _CENTRAL.size > len(cd) or cd[pos : pos + 4] != _CENTRAL_SIG:
            return None
        (_, _, _, flags, method, dos_time, dos_date, crc, size, usize, nlen, xlen, clen, _, _, _,
         offset) = _CENTRAL.unpack_from(cd, pos)  # fmt: skip
        start = pos + _CENTRAL.size
        name = cd[start : start + nlen]
        extra = cd[start + nlen : start + nlen + xlen]
        pos = start + nlen + xlen + clen
        if pos > len(cd):
            return None
        if 0xFFFFFFFF in (usize, size, offset):
            values = _zip64_values(extra)
            if values is None:
                return None
            if usize == 0xFFFFFFFF:
                usize = values.pop(0)
            if size == 0xFFFFFFFF and values:
                size = values.pop(0)
            if offset == 0xFFFFFFFF and values:
                offset = values.pop(0)
        text = name.decode("utf-8" if flags & UTF8_FLAG else "cp437", errors="replace")
        if text.endswith("/"):
            continue  # a folder entry names no object
        entries[text] = Entry(name, offset + shift, size, usize, crc, method, flags, dos_time,
                               dos_date)  # fmt: skip
    return entries


def _zip64_values(extra: bytes) -> list[int] | None:
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        if tag == 1:
            body = extra[pos + 4 : pos + 4 + length]
            return list(struct.unpack_from(f"<{len(body) // 8}Q", body))
        pos += 4 + length
    return None


@dataclass(slots=True)
class _Directory:
    entries: dict[str, Entry]
    end: int  # the first byte after the end record


def _read_end(fd: int, pos: int, size: int) -> _Directory | None:
    """The directory whose end record starts at ``pos``, if that record and directory are whole."""
    rec = read_at(fd, END.size, pos)
    if len(rec) < END.size:
        return None
    _, disk, cd_disk, _, _, cd_size, cd_offset, clen = END.unpack(rec)
    end = pos + END.size + clen
    if disk != 0 or cd_disk != 0 or end > size:
        return None
    cd_end = pos
    locator = read_at(fd, _LOCATOR.size, pos - _LOCATOR.size) if pos >= _LOCATOR.size else b""
    if len(locator) == _LOCATOR.size and locator[:4] == _LOCATOR_SIG:
        _, _, end64_offset, _ = _LOCATOR.unpack(locator)
        for where in (end64_offset, pos - _LOCATOR.size - _END64.size):
            rec64 = read_at(fd, _END64.size, where) if where >= 0 else b""
            if len(rec64) == _END64.size and rec64[:4] == _END64_SIG:
                *_, cd_size, cd_offset = _END64.unpack(rec64)
                cd_end = where
                break
        else:
            return None
    elif 0xFFFFFFFF in (cd_size, cd_offset):
        return None
    # Bytes before the archive (a self-extracting stub) shift every offset; only a file that ends
    # with this record may have them, or a stray record in the middle could pass for a directory.
    shift = cd_end - cd_size - cd_offset
    if shift < 0 or (shift and end != size):
        return None
    entries = _parse_directory(read_at(fd, cd_size, cd_offset + shift), shift)
    if entries is None:
        return None
    return _Directory(entries, end)


def find_directory(fd: int, size: int) -> _Directory | None:
    """The last complete directory of the file, searching back from the end."""
    hi = size
    while hi > 0:
        lo = max(0, hi - _SCAN_BLOCK)
        block = read_at(fd, min(size, hi + 3) - lo, lo)
        stop = len(block)
        while True:
            i = block.rfind(_END_SIG, 0, stop)
            if i < 0:
                break
            found = _read_end(fd, lo + i, size)
            if found is not None:
                return found
            stop = i + 3  # the next search finds signatures that start before i
        hi = lo
    return None
