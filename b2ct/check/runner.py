"""Check every host in parallel: one ssh round trip for facts, one libvirt connection, the smoke domain."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import datetime as dt
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from b2ct.check import decide, opennebula, script, smoke
from b2ct.check.capabilities import parse as parse_capabilities
from b2ct.check.expect import HostExpect, expectations
from b2ct.check.model import CheckResult, HostReport, Report, Status, failed, warned
from b2ct.connection import Connection, ansible_view, connection, select
from b2ct.inventory.model import Site

SSH_UNREACHABLE = 255


@dataclass(frozen=True)
class Options:
    smoke: bool = True
    smoke_kernel: Path | None = None
    smoke_timeout: float = 60.0
    min_free_pct: float = 5.0
    probe_timeout: float = 90.0
    # (user:password, where from) given by the operator; None: read oneadmin's file on the front-end
    one_session: tuple[str, str] | None = None
    one_timeout: float = 10.0


def run(site: Site, inventory: Path, limit: str | None, opts: Options) -> Report:
    view = ansible_view(inventory)
    names = select(view, [h.name for h in site.hosts], limit)
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    t0 = time.monotonic()
    files: smoke.SmokeFiles | str | None = smoke.load_files(opts.smoke_kernel) if opts.smoke else None
    workers = len(names) or 1
    with_one = opennebula.expected(site)
    fe = site.frontend
    # the front-end's probe also reads oneadmin's credentials when the operator gave none
    fe_sections: dict[str, script.Section] = {}
    with tempfile.TemporaryDirectory(prefix="b2ct-check-") as tmp, cf.ThreadPoolExecutor(workers) as pool:
        futures = []
        for name in names:
            host = site.host(name)
            conn = connection(name, host.address, view.hostvars.get(name, {}))
            keep = fe_sections if with_one and opts.one_session is None and host.frontend else None
            exp = expectations(site, host)
            futures.append(pool.submit(check_host, exp, conn, Path(tmp), files, opts, keep))
        hosts = [f.result() for f in futures]
    if with_one:
        # once per run: oned's host pool answers for every host at once
        fe_checked = fe is not None and fe.name in names
        facts = opennebula.gather(
            site, opts.one_session, fe_sections.get("one_auth"), fe_checked, opts.one_timeout
        )
        for h in hosts:
            if h.reachable:  # an unreachable host keeps its single ssh row (docs/check.md, JSON schema)
                h.checks.append(decide.opennebula(h.name, facts))
    return Report(site.name, str(inventory), started, hosts, time.monotonic() - t0)


def _ssh(conn: Connection, command: str, data: bytes, timeout: float) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(conn.ssh_argv(command), input=data, capture_output=True, timeout=timeout)


def _libvirt_facts(conn: Connection, wrapper: Path) -> tuple[decide.LibvirtFacts, object | None]:
    import libvirt

    uri = conn.libvirt_uri(wrapper)
    shown = uri.split("?", 1)[0]
    try:
        lv = libvirt.open(uri)
    except libvirt.libvirtError as exc:
        return decide.LibvirtFacts(shown, error=smoke._msg(exc)), None
    try:
        caps = parse_capabilities(lv.getCapabilities())
        try:
            memory = {k: int(v) for k, v in lv.getMemoryParameters(0).items()}
        except libvirt.libvirtError:
            memory = None
        facts = decide.LibvirtFacts(
            shown,
            lib_version=lv.getLibVersion(),
            hv_type=lv.getType(),
            hv_version=lv.getVersion(),
            caps=caps,
            memory=memory,
        )
    except libvirt.libvirtError as exc:
        with contextlib.suppress(libvirt.libvirtError):
            lv.close()
        return decide.LibvirtFacts(shown, error=smoke._msg(exc)), None
    return facts, lv


def check_host(
    exp: HostExpect,
    conn: Connection,
    tmp: Path,
    files: smoke.SmokeFiles | str | None,
    opts: Options,
    one_auth: dict[str, script.Section] | None = None,
) -> HostReport:
    """Probe one host. `one_auth`: read oneadmin's OpenNebula credentials too and put that section there."""
    import libvirt

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # errors come back as exceptions
    t0 = time.monotonic()
    host = exp.host
    report = HostReport(host.name, host.klass, conn.address)
    wrapper = conn.write_ssh_wrapper(tmp)
    # libvirt connects while the probe script runs: the two ssh sessions overlap.
    lv_result: list[tuple[decide.LibvirtFacts, object | None]] = []
    lv_thread = threading.Thread(target=lambda: lv_result.append(_libvirt_facts(conn, wrapper)), daemon=True)
    lv_thread.start()
    try:
        probe = script.build(exp, read_one_auth=one_auth is not None)
        proc = _ssh(conn, "sh -s", probe.encode(), opts.probe_timeout)
        rc, out = proc.returncode, proc.stdout.decode(errors="replace")
        err = proc.stderr.decode(errors="replace")
    except subprocess.TimeoutExpired:
        rc, out, err = -1, "", f"probe timed out after {opts.probe_timeout:.0f}s"
    lv_thread.join()
    lv_facts, lv = lv_result[0]
    try:
        secs = script.sections(out)
        if rc == SSH_UNREACHABLE or (rc != 0 and not secs):
            report.reachable = False
            last = [ln for ln in err.strip().splitlines() if ln.strip()]
            report.checks.append(
                failed(
                    "ssh",
                    f"unreachable: {last[-1] if last else f'ssh exit {rc}'}",
                    f"is {conn.address} up? try: ssh {conn.user}@{conn.address}",
                )
            )
            return report
        if one_auth is not None and "one_auth" in secs:
            one_auth["one_auth"] = secs.pop("one_auth")
        report.checks += decisions(exp, secs, lv_facts, opts)
        if opts.smoke:
            report.checks.append(_smoke(exp, conn, lv, lv_facts, secs, files, opts))
    finally:
        if lv is not None:
            with contextlib.suppress(Exception):
                lv.close()  # type: ignore[attr-defined]
        report.seconds = time.monotonic() - t0
    return report


def decisions(
    exp: HostExpect, secs: dict[str, script.Section], lv: decide.LibvirtFacts, opts: Options
) -> list[CheckResult]:
    """All checks but the smoke domain, from the facts gathered: pure, no I/O."""
    results = [
        decide.libvirt(lv, secs.get("daemons")),
        decide.kvm(lv.caps, secs.get("cpu"), exp.hypervisor),
        decide.ksm(secs.get("ksm"), lv.memory),
    ]
    for i, m in enumerate(exp.mounts):
        mounted = decide.mount(m, secs.get(f"mount.{i}"), opts.min_free_pct)
        results.append(mounted)
        # fallocate on the wrong filesystem proves nothing: the storage row already says what is wrong
        if m.fallocate and mounted.status is not Status.FAIL:
            results.append(decide.fallocate(m, secs.get(f"fallocate.{i}")))
    for i, b in enumerate(exp.bridges):
        results.append(decide.bridge(b, secs.get(f"bridge.{i}")))
    if exp.gluster:
        results.append(decide.gluster_peers(exp.gluster[0], secs.get("gluster.peers")))
        for i, g in enumerate(exp.gluster):
            status, heal = secs.get(f"gluster.status.{i}"), secs.get(f"gluster.heal.{i}")
            results.append(decide.gluster_volume(g, status, heal))
    if exp.squid_port:
        results.append(decide.squid(exp.squid_port, secs.get("squid"), secs.get("daemons")))
    return results


def _smoke(
    exp: HostExpect,
    conn: Connection,
    lv: object | None,
    lv_facts: decide.LibvirtFacts,
    secs: dict[str, script.Section],
    files: smoke.SmokeFiles | str | None,
    opts: Options,
) -> CheckResult:
    if lv is None or lv_facts.caps is None:
        return warned("smoke-domain", "not run: no libvirt connection", "fix the libvirt check first")
    if not isinstance(files, smoke.SmokeFiles):
        return decide.smoke(decide.SmokeOutcome(skipped=files or "disabled"))
    have = {}
    for line in (secs.get("smoke") or script.Section(0, "")).out.splitlines():
        digest, _, name = line.partition("  ")
        have[name.strip()] = digest.strip()
    if have != files.digests():
        cmd = f"mkdir -p {script.SMOKE_DIR} && tar -x -o -C {script.SMOKE_DIR}"
        try:
            up = _ssh(conn, cmd, files.tarball(), opts.probe_timeout)
        except subprocess.TimeoutExpired:
            return failed("smoke-domain", "upload of the smoke kernel/initrd timed out")
        if up.returncode != 0:
            msg = up.stderr.decode(errors="replace").strip().splitlines()
            why = msg[-1] if msg else f"exit {up.returncode}"
            return failed("smoke-domain", f"upload to {script.SMOKE_DIR} failed: {why}")
    domain_type = "kvm" if lv_facts.caps.kvm else "qemu"
    return decide.smoke(smoke.run(lv, exp.host.name, domain_type, opts.smoke_timeout))
