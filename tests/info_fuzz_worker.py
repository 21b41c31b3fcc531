"""Opens info documents read from stdin under a memory limit and reports how each one ended.

Run by test_info_fuzz.py in a subprocess, so that a document that makes bigarrays allocate
terabytes or recurse without end costs a MemoryError or a dead child, not the test run. Input: a
JSON object ``{"limit": bytes, "cases": [base64 of an info file, ...]}``; output: one JSON list
with, per case, ``"ok"``, ``"typed"`` or a description of any other exception.
"""

from __future__ import annotations

import base64
import json
import resource
import sys
import traceback
import uuid
import warnings


def exercise(url: str) -> None:
    """Open the volume, touch what callers touch, read a small box at each of its first mips."""
    import bigarrays as ba

    with ba.open(url, threads=1) as vol:
        for mip in range(min(vol.mips, 3)):
            level = vol.at_mip(mip)
            if level.nbytes < 0 or level.size < 0 or level.num_chunks < 0:
                raise AssertionError(f"negative size of {level!r}")
            repr(level)
            json.dumps(level.info)
            x, y, z = level.voxel_offset
            level[x : x + 2, y : y + 3, z : z + 1]


def outcome(data: bytes) -> str:
    import bigarrays as ba
    from bigarrays.stores.memory import MemoryStore, drop_namespace

    url = f"memory://fuzz-{uuid.uuid4().hex}"
    MemoryStore(url).put("info", data)
    try:
        exercise(url)
    except ba.BigArraysError:
        return "typed"
    except BaseException as exc:  # every other ending is what the test reports
        tail = "".join(traceback.format_exception(exc)[-4:])
        return f"{type(exc).__name__}: {str(exc)[:300]}\n{tail}"
    finally:
        drop_namespace(url)
    return "ok"


def main() -> None:
    request = json.loads(sys.stdin.read())
    import bigarrays  # noqa: F401 - imported before the limit: its import is not under test

    limit = int(request["limit"])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    warnings.simplefilter("ignore")  # viewer-compatibility warnings are no outcome
    results = [outcome(base64.b64decode(case)) for case in request["cases"]]
    sys.stdout.write(json.dumps(results))


if __name__ == "__main__":
    main()
