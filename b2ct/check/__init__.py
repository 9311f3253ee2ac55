"""`b2ct check`: probe every host (ssh + libvirt), decide PASS/WARN/FAIL per check, render a report.

probes (raw facts) -> decide (pure functions: facts + inventory expectations -> CheckResult) -> render.
"""
