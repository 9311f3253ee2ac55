"""b2ct: turn a rack of bare servers into an OpenNebula/KVM cloud."""

from pathlib import Path

__version__ = "0.1.0"

# Templates, roles and layout data live beside the package in a source checkout; an installed
# wheel would not carry them, so b2ct is meant to run from its checkout (pip install -e .).
ROOT = Path(__file__).resolve().parent.parent
