"""`make k8s-image IMAGE=registry/users-service:1.4.0`: the image a Kustomize overlay deploys.

Rewrites the `newName` and `newTag` of the overlay's `users-service` image entry in place,
keeping its comments (what `kustomize edit set image` does, without needing kustomize).
"""

from __future__ import annotations

import re
from pathlib import Path


def split_image(image: str) -> tuple[str, str]:
    """registry:5000/team/users-service:1.4.0 -> (registry:5000/team/users-service, 1.4.0)."""
    name, _, tag = image.rpartition(":")
    if not name or "/" in tag:
        raise ValueError(f"{image!r}: give the image with a tag, NAME:TAG")
    return name, tag


def set_image(kustomization: Path, image: str) -> None:
    name, tag = split_image(image)
    text = kustomization.read_text()
    entry = re.compile(
        r"(- name: users-service\n(\s+)newName: )[^\n]*(\n\2newTag: )[^\n]*", re.MULTILINE
    )
    updated, count = entry.subn(lambda m: f'{m[1]}{name}{m[3]}"{tag}"', text)
    if count != 1:
        raise ValueError(f"{kustomization}: no users-service entry with newName and newTag")
    kustomization.write_text(updated)
