"""Tasks (SVA, RA, SA), the template generator and data loaders."""

from influence_patterns.tasks.instance import Instance

__all__ = ["Instance"]
