"""The limits of an XLSX (a zip) that its directory alone can tell, before anything is
inflated (docs/flex-data-standard.md, "Files flexbench accepts").

Standard library only, so that the upload page (``flexbench serve``) can refuse a zip bomb in
its own small process, with the same rule and words as ``flexbench validate``, before the file
reaches a checking worker. :func:`transforms.publications.check_zip_sizes` applies the same
function first, then inflates every part in counted chunks.
"""

from __future__ import annotations

import zipfile

#: The most parts an XLSX may have.
MAX_PARTS = 1000
#: A part larger than this (bytes) is held to the compression-ratio limit.
RATIO_CHECKED_FROM = 1024 * 1024


def declared_too_large(
    archive: zipfile.ZipFile, max_inflated_bytes: int, max_compression_ratio: int
) -> bool:
    """Whether the zip's directory declares more than the limits allow: more than
    :data:`MAX_PARTS` parts, more than ``max_inflated_bytes`` in all, or a part larger than
    :data:`RATIO_CHECKED_FROM` bytes that inflates more than ``max_compression_ratio`` times
    its compressed size."""
    members = archive.infolist()
    if len(members) > MAX_PARTS:
        return True
    if sum(m.file_size for m in members) > max_inflated_bytes:
        return True
    return any(
        m.file_size > RATIO_CHECKED_FROM
        and m.file_size > max_compression_ratio * max(m.compress_size, 1)
        for m in members
    )


def too_large_message(filename: str, max_inflated_bytes: int) -> str:
    """What a trust reads when its XLSX would inflate past the limits (rule
    ``too-large-inflated``)."""
    return (
        f"{filename} would inflate past {max_inflated_bytes:,} bytes when unzipped "
        "(an XLSX is a zip); a publication should be far smaller - check for stray "
        "formatted cells or save as CSV"
    )
