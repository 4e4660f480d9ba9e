"""One settings loader: where the project, the warehouse, the landing zone and the sources are.

Everything a run needs is resolved here, once, from (in order of precedence) explicit
arguments, environment variables, and defaults relative to the project root:

- warehouse file: ``--warehouse`` / ``FLEXBENCH_WAREHOUSE`` / ``data/flexbench.duckdb``
- sources registry: ``--sources`` / ``FLEXBENCH_SOURCES`` / ``sources.yml``
- data directory (landing zone, reports): ``FLEXBENCH_DATA_DIR`` / the warehouse's folder
- local URLs (file://, loopback http://): ``allow_local_urls: true`` in the sources file or
  ``FLEXBENCH_ALLOW_LOCAL_URLS=1``
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(Exception):
    """A configuration problem a user can fix; shown as one line."""


def _truthy(value: str | None) -> bool:
    return str(value or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass
class Settings:
    sources_path: Path
    warehouse_path: Path
    data_dir: Path
    allow_local_urls: bool
    sources: dict[str, Any] = field(default_factory=dict)

    @property
    def landing_dir(self) -> Path:
        return self.data_dir / "landing"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"

    def as_conf(self) -> dict[str, str]:
        """The run configuration passed to every DAG run (Airflow ``dag_run.conf``)."""
        return {
            "sources": str(self.sources_path),
            "warehouse": str(self.warehouse_path),
            "data_dir": str(self.data_dir),
            "allow_local_urls": "1" if self.allow_local_urls else "0",
        }


def env_workers(name: str, default: int) -> int:
    """A number of worker processes: the environment variable ``name`` (a whole number, at
    least 1), else ``default`` (at least 1). A value that is not a whole number is refused,
    naming the variable."""
    text = os.environ.get(name, "").strip()
    if text:
        try:
            return max(1, int(text))
        except ValueError:
            raise ValueError(f"{name} must be a whole number, not {text!r}") from None
    return max(1, default)


def load_sources(path: Path) -> dict[str, Any]:
    """Read the sources registry (YAML). Raises SettingsError with one clear line."""
    import yaml

    if not path.exists():
        raise SettingsError(f"sources file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise SettingsError(f"sources file {path} is not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"sources file {path} must be a mapping of source names to URLs")
    return data


def default_sources_path() -> Path:
    """The sources registry a run reads when none is given: ``FLEXBENCH_SOURCES`` or
    ``sources.yml`` in the project."""
    return Path(os.environ.get("FLEXBENCH_SOURCES") or PROJECT_ROOT / "sources.yml").expanduser()


def default_warehouse_path() -> Path:
    """The warehouse a run writes when none is given: ``FLEXBENCH_WAREHOUSE`` or
    ``data/flexbench.duckdb`` in the project."""
    return Path(
        os.environ.get("FLEXBENCH_WAREHOUSE") or PROJECT_ROOT / "data" / "flexbench.duckdb"
    ).expanduser()


def load(
    sources: str | Path | None = None,
    warehouse: str | Path | None = None,
    conf: dict[str, Any] | None = None,
    require_sources: bool = True,
) -> Settings:
    """Resolve the settings of a run.

    Parameters
    ----------
    sources, warehouse : path, optional
        Explicit overrides (command-line options).
    conf : dict, optional
        A DAG run's configuration (as produced by :meth:`Settings.as_conf`); wins over env.
    require_sources : bool
        When False, a missing sources file is not an error (commands that only read the
        warehouse).
    """
    conf = conf or {}
    env = os.environ
    sources_path = Path(sources or conf.get("sources") or default_sources_path()).expanduser()
    warehouse_path = Path(
        warehouse or conf.get("warehouse") or default_warehouse_path()
    ).expanduser()
    data_dir = Path(
        conf.get("data_dir") or env.get("FLEXBENCH_DATA_DIR") or warehouse_path.parent
    ).expanduser()
    data: dict[str, Any] = {}
    if require_sources or sources_path.exists():
        data = load_sources(sources_path)
    allow_local = (
        _truthy(str(conf.get("allow_local_urls", "")))
        or _truthy(env.get("FLEXBENCH_ALLOW_LOCAL_URLS"))
        or bool(data.get("allow_local_urls", False))
    )
    return Settings(
        sources_path=sources_path.resolve(),
        warehouse_path=warehouse_path.resolve(),
        data_dir=data_dir.resolve(),
        allow_local_urls=allow_local,
        sources=data,
    )
