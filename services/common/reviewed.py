"""Reviewed configuration files: TOML validated by a pydantic model before a service starts.

The diagnosis rules and the scheduling policy are files a clinical safety officer or a bed
manager reviews. Both load the same way: a hospital's own file, or the one built into the
package; an error names the file and every entry at fault (`news2.bands: high_from must be above
medium_from`), and the service does not start.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def where(location: tuple[int | str, ...]) -> str:
    """A pydantic error location as the file's reader would write it: `pathways[0].actions`."""
    parts: list[str] = []
    for part in location:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(f".{part}" if parts else part)
    return "".join(parts) or "(file)"


def validated(model: type[M], data: dict[str, object], origin: str, error: type[ValueError]) -> M:
    """`data` as `model`, or `error` naming `origin` and every entry at fault."""
    try:
        return model.model_validate(data)
    except ValidationError as refused:
        problems = "; ".join(
            f"{where(e['loc'])}: {e['msg']}" for e in refused.errors(include_url=False)
        )
        raise error(f"{origin}: {problems}") from None


def load_reviewed(
    model: type[M],
    path: str,
    *,
    package: str,
    built_in: str,
    error: type[ValueError],
    parse_float: Callable[[str], Any] = float,
) -> M:
    """The file at `path`, or the package's built-in `built_in` when `path` is empty, validated."""
    if path:
        origin = Path(path).name
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as refused:
            raise error(f"{origin}: cannot read ({refused.strerror})") from None
    else:
        origin = built_in
        text = resources.files(package).joinpath(built_in).read_text()
    try:
        data = tomllib.loads(text, parse_float=parse_float)
    except tomllib.TOMLDecodeError as refused:
        raise error(f"{origin}: not valid TOML ({refused})") from None
    return validated(model, data, origin, error)
