"""Kickstart generation: per-host and rack kickstarts from kickstart/ templates, validated by pykickstart."""

from b2ct.kickstart.render import RACK_NAME, Rendered, render, render_media_set, write
from b2ct.kickstart.validate import validate

__all__ = ["RACK_NAME", "Rendered", "render", "render_media_set", "validate", "write"]
