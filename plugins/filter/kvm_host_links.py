"""kvm_host_links: the role's bridges, bonds and addresses turned into the links the host must have.

The role's variables name NICs by MAC, as the inventory does; the OS names them. Given the MAC-to-name map
read from the kernel (tasks/find_nics.yml), this works out every interface the host needs and what each
one's configuration says: bond members enslaved to their bond, VLAN devices on their link (a NIC or a bond),
bridges with their port (a NIC, a bond or a VLAN), addresses on bridges or on interfaces of their own. Both
network backends (systemd-networkd files, NetworkManager connections) and the liveness checks read the
same result.

Interface names follow the kernel's rules (IFNAMSIZ: 15 characters) and the VLAN naming NetworkManager and
anaconda use, ``<link>.<vlan id>``.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

IFNAME_MAX = 15


def _link_of(item: dict[str, Any], what: str, nic_by_mac: dict[str, str], bonds: dict[str, Any]) -> str:
    """The interface ``item`` sits on: the NIC with its ``mac``, or its ``bond``."""
    if item.get("bond"):
        if item["bond"] not in bonds:
            raise AnsibleFilterError(f"{what}: bond {item['bond']!r} is not in kvm_host_bonds")
        return str(item["bond"])
    mac = str(item.get("mac", "")).lower()
    if not mac:
        raise AnsibleFilterError(f"{what}: give the mac of a NIC or a bond")
    if mac not in nic_by_mac:
        raise AnsibleFilterError(f"{what}: no interface has MAC {mac}; found: {nic_by_mac}")
    return nic_by_mac[mac]


def _device(link: str, vlan: Any, what: str) -> str:
    if vlan in (None, ""):
        return link
    name = f"{link}.{int(vlan)}"
    if len(name) > IFNAME_MAX:
        raise AnsibleFilterError(f"{what}: VLAN interface {name} is longer than {IFNAME_MAX} characters")
    return name


def kvm_host_links(
    bridges: list[dict[str, Any]],
    bonds: list[dict[str, Any]],
    addresses: list[dict[str, Any]],
    nic_by_mac: dict[str, str],
) -> dict[str, Any]:
    """Returns ``{"bonds": [...], "vlans": [...], "bridges": [...], "links": [...], "checks": [...]}``:

    - bonds: name, mode, miimon, members (interface names), mac (of the first member);
    - vlans: name, id, link;
    - bridges: the role's bridge items with ``port`` (the device enslaved) and ``mac`` (its MAC, so that
      DHCP leases and switches' tables stay valid when the bridge takes the address over);
    - links: one per interface to configure, with ``file`` (its systemd-networkd .network name), ``names``
      (what it matches), ``bond``/``bridge`` (its master), ``vlans`` (VLAN devices on it), ``address``;
      ``link_by_name``: the same by interface name;
    - checks: per interface, what the kernel must show when the configuration is live;
    - nm_members, nm_nic_ports, nm_nic_addresses, nm_up: NetworkManager's bond member connections, the
      bridges whose port is a NIC, the NICs with an address of their own, the connections to bring up
      (in order: bonds, members, bridges, ports, VLANs, addresses).

    Raises AnsibleFilterError naming the item: a MAC no interface has, an unknown bond, a name too long,
    one interface given two untagged roles.
    """
    by_name: dict[str, dict[str, Any]] = {}
    out_bonds = []
    for bond in bonds:
        what = f"bond {bond.get('name')}"
        members = []
        for mac in bond.get("members", []):
            mac = str(mac).lower()
            if mac not in nic_by_mac:
                raise AnsibleFilterError(f"{what}: no interface has member MAC {mac}; found: {nic_by_mac}")
            members.append(nic_by_mac[mac])
        if not members:
            raise AnsibleFilterError(f"{what}: no members")
        first_mac = str(bond["members"][0]).lower()
        entry = {
            "name": bond["name"],
            "mode": bond.get("mode", "balance-rr"),
            "miimon": int(bond.get("miimon", 100)),
            "members": members,
            "member_macs": [str(m).lower() for m in bond["members"]],
            "mac": first_mac,
        }
        out_bonds.append(entry)
        by_name[bond["name"]] = entry
    macs = {name: mac for mac, name in nic_by_mac.items()}
    links: dict[str, dict[str, Any]] = {}

    def link(name: str, kind: str) -> dict[str, Any]:
        if name not in links:
            links[name] = {
                "name": name,
                "kind": kind,
                "file": f"05-b2ct-{name}.network",
                "names": [name],
                "bond": "",
                "bridge": "",
                "vlans": [],
                "address": None,
            }
        return links[name]

    def mac_of(name: str) -> str:
        return by_name[name]["mac"] if name in by_name else macs[name]

    out_vlans: dict[str, dict[str, Any]] = {}
    users: dict[str, str] = {}

    def claim(device: str, what: str) -> None:
        if device in users:
            raise AnsibleFilterError(f"{what}: interface {device} is already used by {users[device]}")
        users[device] = what

    for bond in out_bonds:
        members = link(f"{bond['name']}-members", "members")
        members.update(
            names=bond["members"], bond=bond["name"], file=f"05-b2ct-{bond['name']}-members.network"
        )
        link(bond["name"], "bond")

    def place(item: dict[str, Any], what: str) -> tuple[str, str]:
        base = _link_of(item, what, nic_by_mac, by_name)
        link(base, "bond" if base in by_name else "nic")
        device = _device(base, item.get("vlan"), what)
        if device != base:
            if device not in out_vlans:
                out_vlans[device] = {"name": device, "id": int(item["vlan"]), "link": base}
                links[base]["vlans"].append(device)
            link(device, "vlan")
        return base, device

    out_bridges = []
    for bridge in bridges:
        what = f"bridge {bridge.get('name')}"
        base, port = place(bridge, what)
        claim(port, what)
        entry = links[port]
        entry["bridge"] = bridge["name"]
        entry["file"] = f"05-b2ct-{bridge['name']}-port.network"
        out_bridges.append({**bridge, "port": port, "mac": mac_of(base)})
    for addr in addresses:
        what = f"address {addr.get('address')}"
        device = place(addr, what)[1]
        claim(device, what)
        links[device]["address"] = {k: addr[k] for k in ("address", "gateway", "dns") if addr.get(k)}

    checks = []
    for bond in out_bonds:
        checks += [
            {"device": m, "label": f"{m} in {bond['name']}", "master": bond["name"]} for m in bond["members"]
        ]
    for entry in links.values():
        if entry["kind"] == "members":
            continue
        check: dict[str, Any] = {"device": entry["name"], "label": entry["name"], "master": entry["bridge"]}
        if entry["kind"] == "bond":
            check["bond_mode"] = by_name[entry["name"]]["mode"]
        if entry["kind"] == "vlan":
            check["vlan"] = out_vlans[entry["name"]]["id"]
        if entry["address"]:
            check["address"] = entry["address"]["address"]
        checks.append(check)
    checks += [
        {"device": b["name"], "label": b["name"], "master": "", "address": b["address"]} for b in out_bridges
    ]
    used = [e for e in links.values() if e["bridge"] or e["bond"] or e["vlans"] or e["address"]]
    # NetworkManager connections, named as anaconda names those it makes from a kickstart
    # (pyanaconda/modules/network/nm_client.py): <bond>_slave_<n> for members, else the interface's name.
    members = [
        {"conn": f"{b['name']}_slave_{n}", "ifname": m, "bond": b["name"]}
        for b in out_bonds
        for n, m in enumerate(b["members"], 1)
    ]
    nic_ports = [b for b in out_bridges if b["port"] in macs]
    nic_addresses = [e for e in used if e["kind"] == "nic" and e["address"] and not e["bridge"]]
    up = [b["name"] for b in out_bonds] + [m["conn"] for m in members] + [b["name"] for b in out_bridges]
    up += [f"{b['name']}-port" for b in nic_ports] + list(out_vlans) + [e["name"] for e in nic_addresses]
    return {
        "bonds": out_bonds,
        "vlans": list(out_vlans.values()),
        "bridges": out_bridges,
        "links": used,
        "link_by_name": {e["name"]: e for e in used},
        "checks": checks,
        "nm_members": members,
        "nm_nic_ports": nic_ports,
        "nm_nic_addresses": nic_addresses,
        "nm_up": up,
    }


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"kvm_host_links": kvm_host_links}
