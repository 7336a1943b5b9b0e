"""``[scan]`` of keyguard.toml, read with the standard library alone: the hook and ``keyguard
scan`` need two settings, not the whole configuration (its stores, policy and SDKs)."""

from __future__ import annotations

import os
from pathlib import Path

from keyguard.errors import ConfigError

CONFIG_NAME = "keyguard.toml"
_KNOWN = ("baseline", "exclude")


class ScanSettings:
    """What ``[scan]`` says; paths are resolved against the config file's folder. (A plain
    class: the hook starts faster without dataclasses or typing.)"""

    __slots__ = ("baseline", "exclude", "path", "root")

    def __init__(
        self,
        exclude: tuple[str, ...] = (),
        baseline: Path | None = None,
        root: Path | None = None,  # the config file's folder: exclude globs are relative to it
        path: Path | None = None,  # the config file
    ) -> None:
        self.exclude = exclude
        self.baseline = baseline
        self.root = root
        self.path = path


def find_config(explicit: str | None) -> Path | None:
    """``--config``, else ``KEYGUARD_CONFIG``, else ``keyguard.toml`` in the working folder."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("KEYGUARD_CONFIG")
    if env:
        return Path(env)
    candidate = Path(CONFIG_NAME)
    return candidate if candidate.is_file() else None


def load_scan_settings(explicit: str | None = None) -> ScanSettings:
    """``[scan]`` from the config file, if there is one; a bad file is one ConfigError line."""
    path = find_config(explicit)
    if path is None:
        return ScanSettings()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {path}: {exc.strerror}; pass --config PATH or create "
            f"{CONFIG_NAME} with `keyguard init`"
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8"
        ) from None
    import tomllib

    try:
        data: dict[str, object] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}; fix the TOML syntax there") from None
    return _settings(path, data.get("scan", {}))


def _settings(path: Path, scan: object) -> ScanSettings:
    if not isinstance(scan, dict):
        raise ConfigError(f"{path}: [scan] must be a table of settings ({', '.join(_KNOWN)})")
    for key in scan:
        if key not in _KNOWN:
            raise ConfigError(
                f"{path}: unknown setting {key!r} in [scan]; known: {', '.join(_KNOWN)}"
            )
    exclude = scan.get("exclude", [])
    if not isinstance(exclude, list) or not all(isinstance(e, str) for e in exclude):
        raise ConfigError(f"{path}: [scan] exclude must be a list of path globs")
    baseline = scan.get("baseline")
    if baseline is not None and (not isinstance(baseline, str) or not baseline.strip()):
        raise ConfigError(
            f'{path}: [scan] baseline must be a file name, like ".keyguard-baseline.json"'
        )
    root = path.parent.resolve()
    return ScanSettings(
        tuple(exclude), root / baseline if baseline is not None else None, root, path
    )
