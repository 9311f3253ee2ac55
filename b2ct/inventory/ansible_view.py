"""Read an inventory through ansible-core itself, so that b2ct sees exactly what `ansible-inventory --list`
shows: same plugins, same variable precedence, merge keys, `!vault` values, `group_vars/all/` directories.

ansible-core 2.19 tags every value it loads from YAML with its origin (file, line, column); b2ct reads those
tags to name the line of a bad value. The few ansible internals used (the Origin tag, the vars plugin's
caches) are kept in this module; tests/inventory/test_ansible_parity.py compares the result with the
`ansible-inventory` command over several layouts, so a change in ansible shows up there.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from b2ct.errors import B2ctError

VAULT_HINT = "pass --vault-password-file FILE or set ANSIBLE_VAULT_PASSWORD_FILE"
# ansible-inventory treats a file with these endings as YAML (its yaml plugin's default extensions)
YAML_SUFFIXES = (".yml", ".yaml", ".json")


@dataclass(frozen=True)
class Position:
    """Where a value was written: its file and 1-based line and column."""

    path: str
    line: int
    col: int = 0

    def __str__(self) -> str:
        return f"{display_path(self.path)}:{self.line}"


def display_path(path: str) -> str:
    """A path as the user would type it: relative to the working directory when below it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return path
    return path if rel.startswith("..") else rel


def position(value: Any) -> Position | None:
    """The origin ansible recorded for ``value`` (None for values it cannot tag: bool, None)."""
    from ansible._internal._datatag._tags import Origin

    origin = Origin.get_tag(value)
    if origin is None or origin.path is None or origin.line_num is None:
        return None
    return Position(origin.path, origin.line_num, origin.col_num or 0)


def value_position(value: Any) -> Position | None:
    """Where ``value`` is written; for a mapping or list, the line of the key that holds it (a mapping's
    own position is that of its first entry)."""
    pos = position(value)
    if pos is not None and isinstance(value, dict | list):
        from b2ct.inventory.yamlsrc import preceding_scalar

        key = preceding_scalar(pos.path, pos.line, pos.col)
        if key is not None:
            return Position(pos.path, key[0], key[1])
    return pos


def where(container: Any, key: Any = None) -> str:
    """file:line of ``container[key]`` (or of the container), '' when unknown."""
    if key is not None:
        try:
            child = container[key]
        except (KeyError, IndexError, TypeError):
            child = None
        pos = value_position(child) if isinstance(container, dict) else position(child)
        if pos is None and isinstance(container, dict):
            # bool and None values carry no tag; their key does
            pos = key_position(container, key)
        if pos is not None:
            return str(pos)
    pos = position(container)
    return str(pos) if pos else ""


def key_position(container: dict[Any, Any], key: Any) -> Position | None:
    """Where ``key`` itself is written inside ``container``."""
    return next((position(k) for k in container if k == key), None)


# ------------------------------------------------------------------------------------------------- vault


def is_vaulted(value: Any) -> bool:
    from ansible.parsing.vault import EncryptedString

    return type(value) is EncryptedString


def ciphertext(value: Any) -> str:
    from ansible.parsing.vault import VaultHelper

    return VaultHelper.get_ciphertext(value, with_tags=False) or ""


@dataclass
class Vault:
    """The vault secrets given to b2ct, read the way ansible's command line reads them."""

    secrets: list[tuple[str, Any]] = field(default_factory=list)
    sources: tuple[str, ...] = ()

    def decrypt(self, value: Any, name: str, at: str) -> str:
        """The plaintext of an ``!vault`` value; B2ctError naming ``at`` when it cannot be had."""
        from ansible.errors import AnsibleError
        from ansible.module_utils.common.text.converters import to_text
        from ansible.parsing.vault import VaultLib

        if not self.secrets:
            raise B2ctError(
                f"{name} is vault-encrypted and no vault password was given", where=at, hint=VAULT_HINT
            )
        try:
            return to_text(VaultLib(secrets=self.secrets).decrypt(ciphertext(value)))
        except AnsibleError as exc:
            raise B2ctError(
                f"{name}: cannot decrypt it with the vault password from {', '.join(self.sources)}: "
                f"{_first_line(exc)}",
                where=at,
            ) from None


def _vault(loader: Any, password_files: Sequence[str | Path]) -> Vault:
    """Secrets from the given files, ANSIBLE_VAULT_PASSWORD_FILE / ansible.cfg and vault identities.

    Mirrors ansible's CLI.setup_vault_secrets (ansible/cli/__init__.py) without prompting: an executable
    file is run and its output is the password, as ansible does (get_file_vault_secret).
    """
    from ansible import constants as C
    from ansible.errors import AnsibleError
    from ansible.parsing.vault import get_file_vault_secret

    slugs: list[tuple[str | None, str]] = [(None, str(f)) for f in password_files]
    if C.DEFAULT_VAULT_PASSWORD_FILE:
        slugs.append((None, str(C.DEFAULT_VAULT_PASSWORD_FILE)))
    for identity in C.DEFAULT_VAULT_IDENTITY_LIST or []:
        name, sep, value = str(identity).partition("@")
        if sep and value not in ("prompt", "prompt_ask_vault_pass"):
            slugs.append((name, value))
    vault = Vault()
    for vault_id, filename in slugs:
        if not Path(filename).exists():
            raise B2ctError("vault password file not found", where=filename, hint=VAULT_HINT)
        try:
            secret = get_file_vault_secret(filename=filename, vault_id=vault_id, loader=loader)
            secret.load()
        except AnsibleError as exc:
            raise B2ctError(f"cannot read the vault password: {_first_line(exc)}", where=filename) from None
        vault.secrets.append((vault_id or C.DEFAULT_VAULT_IDENTITY, secret))
    vault.sources = tuple(display_path(f) for _, f in slugs)
    loader.set_vault_secrets(vault.secrets)
    return vault


# --------------------------------------------------------------------------------------------- inventory


@dataclass
class HostView:
    name: str
    groups: list[str]  # every group the host is in, 'all' and ancestors included
    vars: dict[str, Any]  # as `ansible-inventory --list` shows them (_meta.hostvars)
    at: str  # file:line of the host's first definition


@dataclass
class InventoryView:
    """What ansible-core makes of an inventory, with what b2ct needs to point at source lines."""

    source: Path
    all_vars: dict[str, Any]  # the `all` group's variables, group_vars/all included
    hosts: dict[str, HostView]
    groups: dict[str, list[str]]  # group -> child groups
    vault: Vault
    _manager: Any = None
    _loader: Any = None

    def definitions(self, host: str, key: str) -> Iterator[tuple[dict[str, Any], Position | None]]:
        """Every place that sets ``key`` for ``host``, lowest precedence first (ansible's order).

        Used to place values that carry no origin (booleans, nulls); same layers as
        VariableManager.get_vars (ansible/vars/manager.py) at stage 'inventory'.
        """
        from ansible import constants as C
        from ansible.inventory.helpers import sort_groups
        from ansible.vars.plugins import get_vars_from_inventory_sources

        inv, loader = self._manager, self._loader
        h = inv.get_host(host)
        all_group = inv.groups["all"]
        groups = sort_groups([g for g in h.get_groups() if g.name != "all"])
        sources = inv._sources

        def plugins(entity: Any) -> dict[str, Any]:
            return get_vars_from_inventory_sources(loader, sources, [entity], "inventory")

        layers: dict[str, list[dict[str, Any]]] = {
            "all_inventory": [all_group.get_vars()],
            "groups_inventory": [g.get_vars() for g in groups],
            "all_plugins_inventory": [plugins(all_group)],
            "groups_plugins_inventory": [plugins(g) for g in groups],
        }
        order = [*C.VARIABLE_PRECEDENCE]
        for name in order:
            for layer in layers.get(name, []):
                if key in layer:
                    yield layer, key_position(layer, key)
        for layer in (h.get_vars(), plugins(h)):
            if key in layer:
                yield layer, key_position(layer, key)

    def var_position(self, host: str, key: str) -> Position | None:
        """Where the value ``host`` gets for ``key`` was written (the last definition by precedence)."""
        value = self.hosts[host].vars.get(key)
        pos = value_position(value)
        if pos is not None:
            return pos
        found = None
        for _layer, at in self.definitions(host, key):
            found = at or found
        return found


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return " ".join(str(text).split("\n", 1)[0].split())


def _ansible_error(exc: BaseException, fallback: str) -> B2ctError:
    """One line from an ansible error, at the file:line its origin names."""
    obj = getattr(exc, "obj", None)
    pos = position(obj) if obj is not None else None
    message = _first_line(exc)
    if "decrypt" in message.lower() and "vault" in message.lower():
        return B2ctError(
            f"cannot decrypt a vault-encrypted file: {message}", where=str(pos or fallback), hint=VAULT_HINT
        )
    return B2ctError(message, where=str(pos) if pos else fallback)


def _candidate_files(source: Path) -> list[Path]:
    """The files ansible-inventory would try as inventory sources (ansible/inventory/manager.py)."""
    from ansible.inventory.manager import IGNORED

    if not source.is_dir():
        return [source]
    found = []
    for name in sorted(os.listdir(source)):
        if IGNORED.search(name.encode()):
            continue
        path = source / name
        found.extend(_candidate_files(path) if path.is_dir() else [path])
    return found


def _compose(f: Path) -> list[Any]:
    """The YAML node trees of ``f`` (libyaml when present: fast), or [] for a vault-encrypted file.
    A syntax error becomes a B2ctError at its line."""
    import yaml

    try:
        text = f.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise B2ctError("not UTF-8 text", where=display_path(str(f))) from None
    except OSError as exc:
        raise B2ctError(f"cannot read: {exc.strerror}", where=display_path(str(f))) from None
    if text.startswith("$ANSIBLE_VAULT"):
        return []  # a vault-encrypted file: ansible decrypts and reads it
    loader = yaml.CSafeLoader if hasattr(yaml, "CSafeLoader") else yaml.SafeLoader
    try:
        return [n for n in yaml.compose_all(text, Loader=loader) if n is not None]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        started = exc.context_mark
        if exc.context and started and exc.problem_mark and started.line != exc.problem_mark.line:
            problem += f" ({exc.context} started at line {started.line + 1})"
        line = f":{mark.line + 1}" if mark else ""
        raise B2ctError(f"YAML syntax error: {problem}", where=f"{display_path(str(f))}{line}") from None
    except yaml.YAMLError as exc:
        raise B2ctError(f"YAML error: {' '.join(str(exc).split())}", where=display_path(str(f))) from None


def _precheck_yaml(files: list[Path]) -> None:
    """Read each YAML inventory file first: a syntax error then names its line, instead of ansible's
    fall-back to other plugins that ends in 'unable to parse' warnings and an empty inventory."""
    for f in files:
        if f.suffix not in YAML_SUFFIXES:
            continue
        nodes = _compose(f)
        for node in nodes:
            _check_duplicates(node, f)
        if nodes and not _is_plugin_config(nodes[0]):
            _check_groups(nodes[0], f)


def _is_plugin_config(node: Any) -> bool:
    import yaml

    return isinstance(node, yaml.MappingNode) and any(k.value == "plugin" for k, _ in node.value)


def _vars_files(source: Path) -> list[Path]:
    """group_vars/ and host_vars/ files beside the inventory, as the host_group_vars plugin finds them
    (YAML extensions or none, directories walked, hidden files skipped)."""
    base = source if source.is_dir() else source.parent
    found = []
    for kind in ("group_vars", "host_vars"):
        root = base / kind
        if not root.is_dir():
            continue
        for f in sorted(root.rglob("*")):
            rel = f.relative_to(root)
            if any(part.startswith(".") for part in rel.parts) or not f.is_file():
                continue
            if f.suffix in YAML_SUFFIXES or f.suffix == "":
                found.append(f)
    return found


def _check_duplicates(root: Any, f: Path) -> None:
    """Refuse a key written twice in one mapping. Ansible keeps the last and warns; in an inventory it is
    nearly always a mistake (two edits of the same setting). Keys a merge (<<) brings in and the mapping
    then sets again are overrides, not duplicates."""
    import yaml

    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: dict[Any, int] = {}
            for key_node, value_node in node.value:
                stack.append(value_node)
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else id(key_node)
                line = key_node.start_mark.line + 1
                if key in keys:
                    raise B2ctError(
                        f"duplicate key {key!r} (also at line {keys[key]})",
                        where=f"{display_path(str(f))}:{line}",
                        hint="keep one of them",
                    )
                keys[key] = line
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


_GROUP_KEYS = ("hosts", "vars", "children")


def _check_groups(root: Any, f: Path) -> None:
    """Keys ansible would skip with a mere warning (a misspelt `hosts:` loses every host under it)."""
    import difflib

    import yaml

    def walk(name: str, node: Any) -> None:
        if not isinstance(node, yaml.MappingNode):
            return
        for key_node, value_node in node.value:
            key = key_node.value
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            if key not in _GROUP_KEYS:
                close = difflib.get_close_matches(str(key), _GROUP_KEYS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise B2ctError(
                    f"group {name}: unknown key {key!r}{hint}; a group has only hosts, vars and children",
                    where=f"{display_path(str(f))}:{key_node.start_mark.line + 1}",
                )
            if key == "children" and isinstance(value_node, yaml.MappingNode):
                for child_key, child in value_node.value:
                    walk(child_key.value, child)

    if isinstance(root, yaml.MappingNode):
        for key_node, node in root.value:
            walk(key_node.value, node)


def _clear_plugin_caches() -> None:
    # host_group_vars keeps module-level caches of the files it found per directory; b2ct may read the
    # same inventory twice in one process (tests, `demo`), after it changed.
    module = sys.modules.get("ansible.plugins.vars.host_group_vars")
    if module is None:
        return
    for name in ("FOUND", "NAK", "CANONICAL_PATHS"):
        cache = getattr(module, name, None)
        if hasattr(cache, "clear"):
            cache.clear()


def read(path: str | Path, vault_password_files: Sequence[str | Path] = ()) -> InventoryView:
    """Read ``path`` (file or directory) as `ansible-inventory -i path --list` does.

    Raises B2ctError for a missing path, a YAML syntax error (file:line), a source no inventory plugin
    could parse, or vault trouble (missing or wrong password).
    """
    source = Path(path)
    if not source.exists():
        raise B2ctError("inventory not found", where=path)
    from ansible.errors import AnsibleError
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.utils.vars import combine_vars
    from ansible.vars.manager import VariableManager
    from ansible.vars.plugins import get_vars_from_inventory_sources

    _clear_plugin_caches()
    loader = DataLoader()
    vault = _vault(loader, vault_password_files)
    files = _candidate_files(source)
    _precheck_yaml(files)
    for f in _vars_files(source):
        for node in _compose(f):
            _check_duplicates(node, f)
    try:
        manager = InventoryManager(loader=loader, sources=[str(source)])
        unparsed = [
            f for f in files if f.suffix in YAML_SUFFIXES and str(f.resolve()) not in _processed(manager)
        ]
        if unparsed:
            _raise_unparsed(unparsed[0], loader)
        variables = VariableManager(loader=loader, inventory=manager)
        all_group = manager.groups["all"]
        all_vars = combine_vars(
            all_group.get_vars(),
            get_vars_from_inventory_sources(loader, manager._sources, [all_group], "all"),
        )
        hosts: dict[str, HostView] = {}
        for h in manager.get_hosts("all"):
            hvars = variables.get_vars(host=h, include_hostvars=False, stage="all")
            hvars = _without_internal(hvars)
            pos = position(h.name)
            hosts[h.name] = HostView(
                h.name,
                [g.name for g in h.get_groups()],
                hvars,
                str(pos) if pos else display_path(str(source)),
            )
    except AnsibleError as exc:
        raise _ansible_error(exc, display_path(str(source))) from None
    groups = {name: [c.name for c in g.child_groups] for name, g in manager.groups.items()}
    return InventoryView(source, all_vars, hosts, groups, vault, manager, loader)


def _processed(manager: Any) -> set[str]:
    return {str(Path(p).resolve()) for p in manager._inventory.processed_sources if p}


def _raise_unparsed(f: Path, loader: Any) -> None:
    """Run the yaml inventory plugin on a YAML file ansible could not parse, for its own reason."""
    from ansible.errors import AnsibleError
    from ansible.inventory.data import InventoryData
    from ansible.plugins.loader import inventory_loader

    plugin = inventory_loader.get("yaml")
    try:
        plugin.parse(InventoryData(), loader, str(f), cache=False)
    except AnsibleError as exc:
        raise _ansible_error(exc, display_path(str(f))) from None
    raise B2ctError("ansible could not parse this inventory file", where=display_path(str(f)))


def _without_internal(hvars: dict[str, Any]) -> dict[str, Any]:
    """The host's variables less ansible's magic ones, as ansible-inventory prints them (its
    _remove_internal, ansible/cli/inventory.py)."""
    from ansible import constants as C

    return {k: v for k, v in hvars.items() if k not in C.INTERNAL_STATIC_VARS}
