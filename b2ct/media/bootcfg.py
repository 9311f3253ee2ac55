"""Rewrite boot loader configs (isolinux, GRUB 2, legacy GRUB) so every entry loads the kickstart by label."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from b2ct.errors import B2ctError
from b2ct.media.labels import escape_label

# Entries that are not a plain install: the "default = install" choice skips them.
_NOT_INSTALL = ("rd.live.check", "mediacheck", "rescue", "inst.rescue", "memtest")


@dataclass(frozen=True)
class BootSpec:
    """What every kernel command line must say."""

    label: str  # label of the medium that holds the kickstart (and stage2 on EL7+)
    ks_arg: str  # "ks" (EL6) or "inst.ks" (EL7+)
    stage2_arg: str | None = None  # "inst.stage2" on EL7+
    ks_path: str = "/ks.cfg"
    timeout: int | None = None  # seconds; None keeps the medium's
    default_install: bool = True


@dataclass
class Entry:
    title: str
    kernel: str
    args: list[str] = field(default_factory=list)
    initrd: str | None = None

    @property
    def is_install(self) -> bool:
        return not any(a == n or a.startswith(n + "=") for a in self.args for n in _NOT_INSTALL)


def rewrite_args(args: list[str], spec: BootSpec) -> list[str]:
    label = escape_label(spec.label)
    out: list[str] = []
    stage2_done = False
    for a in args:
        key = a.split("=", 1)[0]
        if key in ("ks", "inst.ks"):
            continue
        if spec.stage2_arg and key in ("inst.stage2", "stage2"):
            if not stage2_done:
                out.append(f"{spec.stage2_arg}=hd:LABEL={label}")
                stage2_done = True
            continue
        out.append(a)
    if spec.stage2_arg and not stage2_done:
        out.append(f"{spec.stage2_arg}=hd:LABEL={label}")
    out.append(f"{spec.ks_arg}=hd:LABEL={label}:{spec.ks_path}")
    return out


def _fail(where: str, what: str) -> B2ctError:
    return B2ctError(f"no boot entry found in {what}", where=where, hint="is this an EL install ISO?")


# --- isolinux / syslinux -------------------------------------------------------------------------


def isolinux_entries(text: str, base_dir: str = "/isolinux") -> list[Entry]:
    entries: list[Entry] = []
    cur: Entry | None = None
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        kw = words[0].lower()
        if kw == "label":
            cur = Entry(title=" ".join(words[1:]), kernel="")
            entries.append(cur)
        elif cur is None:
            continue
        elif kw == "menu" and len(words) > 2 and words[1].lower() == "label":
            cur.title = " ".join(words[2:]).replace("^", "")
        elif kw in ("kernel", "linux") and len(words) > 1:
            cur.kernel = _abs(words[1], base_dir)
        elif kw == "initrd" and len(words) > 1:
            cur.initrd = _abs(words[1], base_dir)
        elif kw == "append":
            for a in words[1:]:
                if a.startswith("initrd="):
                    cur.initrd = _abs(a.split("=", 1)[1], base_dir)
                else:
                    cur.args.append(a)
    return [e for e in entries if e.kernel and e.initrd]


def _abs(path: str, base_dir: str) -> str:
    return path if path.startswith("/") else f"{base_dir.rstrip('/')}/{path}"


def _isolinux_installers(lines: list[str]) -> set[int]:
    """Indexes of the label lines whose entry starts a Linux kernel with an initrd (an installer)."""
    found: set[int] = set()
    label: int | None = None
    kernel = initrd = False
    for i, line in enumerate([*lines, "label"]):
        words = line.split()
        kw = words[0].lower() if words else ""
        if kw == "label":
            if label is not None and kernel and initrd:
                found.add(label)
            label, kernel, initrd = (i if i < len(lines) else None), False, False
        elif kw in ("kernel", "linux") and len(words) > 1:
            kernel = True
        else:
            initrd = initrd or _names_initrd(kw, words)
    return found


def _names_initrd(kw: str, words: list[str]) -> bool:
    return (kw == "initrd" and len(words) > 1) or (
        kw == "append" and any(w.startswith("initrd=") for w in words)
    )


def rewrite_isolinux(text: str, spec: BootSpec, where: str = "isolinux.cfg") -> str:
    lines = text.splitlines()
    installers = _isolinux_installers(lines)
    out: list[str] = []
    edited = 0
    labels: list[tuple[str, bool]] = []  # (label name, is a plain install)
    current: str | None = None
    in_installer = False
    pending_kernel: tuple[int, str] | None = None  # (index in out, indent) of a kernel line without append
    for i, line in enumerate(lines):
        words = line.split()
        kw = words[0].lower() if words else ""
        if kw == "label":
            if pending_kernel is not None:  # the previous installer had no append line: give it one
                at, indent = pending_kernel
                out.insert(at + 1, f"{indent}append {' '.join(rewrite_args([], spec))}")
                edited += 1
            pending_kernel = None
            current = " ".join(words[1:])
            in_installer = i in installers
        if in_installer and kw in ("kernel", "linux") and len(words) > 1:
            pending_kernel = (len(out), line[: len(line) - len(line.lstrip())])
        if in_installer and kw == "append":
            indent = line[: len(line) - len(line.lstrip())]
            args = rewrite_args(words[1:], spec)
            out.append(f"{indent}append {' '.join(args)}")
            edited += 1
            pending_kernel = None
            if current is not None:
                labels.append((current, Entry("", "x", words[1:]).is_install))
            continue
        if kw == "timeout" and spec.timeout is not None:
            out.append(f"timeout {max(1, spec.timeout * 10)}")
            continue
        if spec.default_install and kw == "menu" and len(words) == 2 and words[1].lower() == "default":
            continue
        out.append(line)
    if pending_kernel is not None:
        at, indent = pending_kernel
        out.insert(at + 1, f"{indent}append {' '.join(rewrite_args([], spec))}")
        edited += 1
    if not edited:
        raise _fail(where, "isolinux config")
    if spec.default_install:
        install = next((name for name, ok in labels if ok), None)
        if install is not None:
            out = _isolinux_set_default(out, install)
    return "\n".join(out) + "\n"


def _isolinux_set_default(lines: list[str], install: str) -> list[str]:
    result: list[str] = []
    for line in lines:
        words = line.split()
        kw = words[0].lower() if words else ""
        if kw == "default" and len(words) > 1 and not words[1].endswith(".c32"):
            result.append(f"default {install}")
            continue
        result.append(line)
        if kw == "label" and " ".join(words[1:]) == install:
            result.append("  menu default")
    return result


# --- GRUB 2 --------------------------------------------------------------------------------------

_GRUB_LINUX = re.compile(r"^(\s*)(linux|linuxefi|linux16)(\s+)(\S+)(.*)$")
_GRUB_INITRD = re.compile(r"^\s*(?:initrd|initrdefi|initrd16)\s+(\S+)")
_GRUB_SEARCH = re.compile(r"^(\s*search\b.*?(?:\s-l|\s--label)\s+)('[^']*'|\"[^\"]*\"|\S+)(.*)$")
_GRUB_MENU = re.compile(r"^\s*(menuentry|submenu)\s+('[^']*'|\"[^\"]*\"|\S+)")


def _grub_word(arg: str) -> str:
    # GRUB's lexer eats backslashes outside quotes; \xNN must reach the kernel intact.
    return f"'{arg}'" if "\\" in arg else arg


def _grub_unquote(word: str) -> str:
    return word[1:-1] if len(word) > 1 and word[0] in "'\"" and word[-1] == word[0] else word


def grub2_entries(text: str) -> list[Entry]:
    entries: list[Entry] = []
    cur: Entry | None = None
    for line in text.splitlines():
        m = _GRUB_MENU.match(line)
        if m and m.group(1) == "menuentry":
            cur = Entry(title=_grub_unquote(m.group(2)), kernel="")
            entries.append(cur)
            continue
        if cur is None:
            continue
        if lm := _GRUB_LINUX.match(line):
            cur.kernel = lm.group(4)
            cur.args = [_grub_unquote(a) for a in lm.group(5).split()]
        elif im := _GRUB_INITRD.match(line):
            cur.initrd = im.group(1)
    return [e for e in entries if e.kernel]


def rewrite_grub2(text: str, spec: BootSpec, where: str = "grub.cfg") -> str:
    out: list[str] = []
    edited = 0
    depth = 0
    top_index = -1
    install_index: int | None = None
    for line in text.splitlines():
        stripped = line.strip()
        m = _GRUB_MENU.match(line)
        if m and depth == 0:
            top_index += 1
        if lm := _GRUB_LINUX.match(line):
            args = [_grub_unquote(a) for a in lm.group(5).split()]
            if install_index is None and depth == 1 and Entry("", "x", args).is_install:
                install_index = top_index
            new = " ".join(_grub_word(a) for a in rewrite_args(args, spec))
            out.append(f"{lm.group(1)}{lm.group(2)}{lm.group(3)}{lm.group(4)} {new}")
            edited += 1
        elif sm := _GRUB_SEARCH.match(line):
            out.append(f"{sm.group(1)}'{spec.label}'{sm.group(3)}")
        elif spec.timeout is not None and re.match(r"^\s*set\s+timeout=", line):
            out.append(f"set timeout={spec.timeout}")
        else:
            out.append(line)
        depth += stripped.count("{") - stripped.count("}")
    if not edited:
        raise _fail(where, "GRUB config")
    if spec.default_install and install_index is not None:
        out = [f'set default="{install_index}"' if re.match(r"^\s*set\s+default=", x) else x for x in out]
    return "\n".join(out) + "\n"


# --- legacy GRUB (EL6 EFI) -----------------------------------------------------------------------

_LEGACY_KERNEL = re.compile(r"^(\s*)kernel(\s+)(\S+)(.*)$")


def grub_legacy_entries(text: str) -> list[Entry]:
    entries: list[Entry] = []
    cur: Entry | None = None
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "title":
            cur = Entry(title=" ".join(words[1:]), kernel="")
            entries.append(cur)
        elif cur is not None and words[0] == "kernel" and len(words) > 1:
            cur.kernel, cur.args = words[1], words[2:]
        elif cur is not None and words[0] == "initrd" and len(words) > 1:
            cur.initrd = words[1]
    return [e for e in entries if e.kernel]


def rewrite_grub_legacy(text: str, spec: BootSpec, where: str = "BOOTX64.conf") -> str:
    out: list[str] = []
    edited = 0
    titles = -1
    install_index: int | None = None
    for line in text.splitlines():
        words = line.split()
        if words and words[0] == "title":
            titles += 1
        if km := _LEGACY_KERNEL.match(line):
            args = km.group(4).split()
            if install_index is None and Entry("", "x", args).is_install:
                install_index = titles
            out.append(f"{km.group(1)}kernel{km.group(2)}{km.group(3)} {' '.join(rewrite_args(args, spec))}")
            edited += 1
        elif spec.timeout is not None and re.match(r"^\s*timeout[\s=]", line):
            out.append(f"timeout {spec.timeout}")
        else:
            out.append(line)
    if not edited:
        raise _fail(where, "legacy GRUB config")
    if spec.default_install and install_index is not None:
        out = [f"default={install_index}" if re.match(r"^\s*default[\s=]", x) else x for x in out]
    return "\n".join(out) + "\n"


REWRITERS = {"isolinux": rewrite_isolinux, "grub2": rewrite_grub2, "grub-legacy": rewrite_grub_legacy}


def rewrite(text: str, syntax: str, spec: BootSpec, where: str) -> str:
    return REWRITERS[syntax](text, spec, where)


def entries(text: str, syntax: str, base_dir: str) -> list[Entry]:
    if syntax == "isolinux":
        return isolinux_entries(text, base_dir)
    if syntax == "grub2":
        return grub2_entries(text)
    return grub_legacy_entries(text)


# --- what a config is, and whether it was edited -------------------------------------------------

_ISOLINUX_APPEND = re.compile(r"^\s*append\s", re.IGNORECASE)
_ISOLINUX_KERNEL = re.compile(r"^\s*(kernel|linux)\s", re.IGNORECASE)
_LEGACY_TITLE = re.compile(r"^\s*title\s")


def syntax_of(text: str) -> str | None:
    """Which boot loader reads ``text`` (isolinux, grub2, grub-legacy), from the lines that start a
    kernel; None when no line starts one (a config that boots no installer has nothing to edit)."""
    lines = text.splitlines()
    if any(_GRUB_LINUX.match(ln) for ln in lines):
        return "grub2"
    if any(_LEGACY_KERNEL.match(ln) for ln in lines) and any(_LEGACY_TITLE.match(ln) for ln in lines):
        return "grub-legacy"
    if any(_ISOLINUX_KERNEL.match(ln) for ln in lines) and any(_ISOLINUX_APPEND.match(ln) for ln in lines):
        return "isolinux"
    return None


def kernel_args(text: str, syntax: str) -> list[tuple[int, list[str]]]:
    """(line number, arguments) of every Linux kernel a config can start, in or out of a menu entry.

    isolinux: every label with a kernel and an initrd (on the append line or its own), numbered by
    its append line, or its kernel line when it has none; a kernel without initrd (memtest) is not
    an installer.
    """
    found: list[tuple[int, list[str]]] = []
    if syntax == "isolinux":
        entry: dict | None = None
        for no, line in enumerate([*text.splitlines(), "label"], 1):
            words = line.split()
            kw = words[0].lower() if words else ""
            if kw == "label":
                if entry and entry["kernel"] and entry["initrd"]:
                    found.append((entry["line"], entry["args"]))
                entry = {"kernel": False, "initrd": False, "line": no, "args": []}
            elif entry is None:
                continue
            elif kw in ("kernel", "linux") and len(words) > 1:
                entry["kernel"], entry["line"] = True, no
            elif kw == "initrd" and len(words) > 1:
                entry["initrd"] = True
            elif kw == "append":
                entry["args"], entry["line"] = words[1:], no
                entry["initrd"] = entry["initrd"] or any(w.startswith("initrd=") for w in words[1:])
        return found
    for no, line in enumerate(text.splitlines(), 1):
        if syntax == "grub2" and (m := _GRUB_LINUX.match(line)):
            found.append((no, [_grub_unquote(a) for a in m.group(5).split()]))
        elif syntax == "grub-legacy" and (m := _LEGACY_KERNEL.match(line)):
            found.append((no, m.group(4).split()))
    return found


def unedited(text: str, syntax: str, spec: BootSpec) -> list[int]:
    """Line numbers of kernel lines that do not load the kickstart (and stage 2) from ``spec.label``."""
    label = escape_label(spec.label)
    want = [f"{spec.ks_arg}=hd:LABEL={label}:{spec.ks_path}"]
    if spec.stage2_arg:
        want.append(f"{spec.stage2_arg}=hd:LABEL={label}")
    return [no for no, args in kernel_args(text, syntax) if not all(w in args for w in want)]
