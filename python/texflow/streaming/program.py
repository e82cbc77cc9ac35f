"""A streamed model as the runtime sees it: segmented module + plan manifest + weight archive.

Why one place: the three files are written together by `texflow-compile
--memory-budget` and must be checked together before any compute runs.  The
module carries its own program description (segments, arguments, weight keys;
`texflow-wstream-outline`), the manifest repeats it with a digest and adds the
plan and each weight's sha256, and the archive holds the bytes.  A file from
another model, a truncated archive or a missing entry is a one-line error here;
corrupt bytes are caught by the checksum when the group is read, before any
segment uses it (checking every byte up front would read the whole archive
before the first stage and defeat streaming).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re

from texflow.errors import TexflowError

from .archive import _META_PREFIX
from .archive import FORMAT as ARCHIVE_FORMAT
from .archive import archive_path_for

PROGRAM_FORMAT = "texflow.wstream.program/1"


def program_digest(program: dict) -> str:
    return hashlib.sha256(json.dumps(program, sort_keys=True).encode()).hexdigest()


@dataclasses.dataclass
class ArchiveEntry:
    key: str
    offset: int        # byte offset in the archive file
    length: int
    shape: tuple
    dtype: str         # numpy dtype name
    sha256: str


@dataclasses.dataclass
class StreamedModel:
    """Everything needed to run one streamed module."""
    vmfb_path: str
    vmfb: bytes
    program: dict
    manifest: dict
    archive_path: str
    entries: dict[str, ArchiveEntry]

    @property
    def name(self) -> str:
        return os.path.basename(self.vmfb_path)

    @property
    def weight_bytes(self) -> int:
        return sum(e.length for e in self.entries.values())


def _read_program(vmfb: bytes, path: str) -> dict:
    import iree.runtime as rt
    try:
        mod = rt.VmModule.copy_buffer(rt.VmInstance(), vmfb)
    except (RuntimeError, ValueError) as e:
        raise TexflowError(f"{path} is not a valid IREE module: {str(e).splitlines()[0]}") from None
    text = _program_text(mod)
    if text is not None:
        try:
            prog = json.loads(text)
        except json.JSONDecodeError:
            prog = None
        if prog is not None:
            if prog.get("format") != PROGRAM_FORMAT:
                raise TexflowError(f"{path}: unsupported streaming program format "
                                   f"'{prog.get('format')}'")
            return prog
    raise TexflowError(f"{path} is not a streamed module (compile it with texflow-compile "
                       "--memory-budget=<size>)")


def is_streamed_module(path: str) -> bool:
    """Whether the .vmfb at `path` is a segmented streaming module."""
    import iree.runtime as rt
    try:
        mod = rt.VmModule.mmap(rt.VmInstance(), path)  # mapped: a plain module may be large
    except (OSError, RuntimeError, ValueError):
        return False
    return _program_text(mod) is not None


def _program_text(mod) -> str | None:
    """The program JSON a streamed module carries in its first segment's reflection."""
    for name in mod.function_names:
        refl = dict(mod.lookup_function(name).reflection)
        if "texflow.wstream.program" in refl:
            return refl["texflow.wstream.program"]
    return None


def _read_manifest(path: str, program: dict) -> dict:
    if not os.path.isfile(path):
        raise TexflowError(f"no plan manifest {path} (texflow-compile --memory-budget writes it "
                           "beside the module)")
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TexflowError(f"cannot read plan manifest {path}: {e}") from None
    mans = data if isinstance(data, list) else [data]
    for m in mans:
        if isinstance(m, dict) and m.get("function") == program["function"]:
            if m.get("program_digest") != program_digest(program):
                raise TexflowError(f"plan manifest {path} was written for another module "
                                   "(program digest differs)")
            return m
    raise TexflowError(f"plan manifest {path} has no plan for @{program['function']}")


def _read_archive(path: str, manifest: dict, program: dict) -> dict[str, ArchiveEntry]:
    """Index the archive without reading its data; check keys, sizes and digests."""
    import iree.runtime as rt

    if not os.path.isfile(path):
        raise TexflowError(f"no weight archive {path} (texflow-compile --memory-budget writes it "
                           "beside the module)")
    size = os.path.getsize(path)
    index = rt.ParameterIndex()
    try:
        index.load(path, mmap=True)
    except Exception as e:  # IREE raises IndexError, ValueError, RuntimeError, OSError...
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "out of range" in msg:
            m = re.search(r"file segment out of range[^;]*", msg)
            raise TexflowError(f"{path} is truncated ({m.group(0) if m else msg})") from None
        raise TexflowError(f"{path} is not a valid IREE parameter archive ({msg})") from None
    want = (manifest.get("archive") or {}).get("weights") or {}
    entries = {}
    for i in range(len(index)):
        e = index[i]
        try:
            meta = e.metadata.decode()
            m = json.loads(meta[len(_META_PREFIX):]) if meta.startswith(_META_PREFIX) else None
            tx = m["texflow.wstream"] if m else None
            if tx is None or tx.get("format") != ARCHIVE_FORMAT or not e.is_file:
                raise ValueError("not a texflow weight entry")
            _, offset = e.file_storage
            entries[e.key] = ArchiveEntry(e.key, int(offset), int(e.length),
                                          tuple(int(x) for x in m["shape"]), m["dtype"],
                                          tx["sha256"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as err:
            raise TexflowError(f"{path}: entry '{e.key}' is corrupt or not texflow's ({err})") \
                from None
        if int(offset) + int(e.length) > size:
            raise TexflowError(f"{path} is truncated (entry '{e.key}' ends past the file)")
    for g in program["groups"]:
        for key in g["keys"]:
            if key not in entries:
                raise TexflowError(f"{path} has no weight '{key}': it belongs to another model")
            ent = entries[key]
            if "x".join(map(str, ent.shape)) != g["shapes"][key].rsplit("x", 1)[0] \
                    and ent.shape != ():
                raise TexflowError(f"{path}: weight '{key}' has shape {list(ent.shape)}, the "
                                   f"module expects {g['shapes'][key]} (another model's archive)")
            if key in want and want[key].get("sha256") != ent.sha256:
                raise TexflowError(f"{path}: weight '{key}' differs from the one the module was "
                                   "compiled with (checksum mismatch: another model's archive?)")
    return entries


def load_streamed(vmfb_path: str, manifest_path: str | None = None,
                  archive_path: str | None = None) -> StreamedModel:
    """Open and cross-check a streamed module's three files (no weight data read)."""
    if not os.path.isfile(vmfb_path):
        raise TexflowError(f"no such module: {vmfb_path}")
    with open(vmfb_path, "rb") as f:
        vmfb = f.read()
    program = _read_program(vmfb, vmfb_path)
    manifest = _read_manifest(manifest_path or vmfb_path + ".plan.json", program)
    apath = archive_path or archive_path_for(vmfb_path)
    entries = _read_archive(apath, manifest, program)
    return StreamedModel(vmfb_path, vmfb, program, manifest, apath, entries)


__all__ = ["ArchiveEntry", "PROGRAM_FORMAT", "StreamedModel", "is_streamed_module", "load_streamed",
           "program_digest"]
