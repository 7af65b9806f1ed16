"""Versioned regime models on disk, with `production` and `canary` tags and a rollback history.

Layout under the registry root (`<state_dir>/<hmm.registry_dir>/`):

    <id>/model.json   the model (docs/MODEL_FORMAT.md), never rewritten
    <id>/meta.json    id, created_at, training window, data and model hashes, metrics,
                      parent id, status (a mirror of the tags for readers; tags.json wins)
    tags.json         {"production": id|null, "canary": id|null,
                       "previous_production": [ids, oldest first], "history": [events]}

Ids are `m-<UTC yyyymmddThhmmssZ>-<first 8 hex of the model's sha256>`: sortable by
creation time and tied to the content. Adding the same model twice returns the same id.

Durability: a model directory is written as a hidden temp directory (every file written,
fsynced), renamed into place, then the root directory is fsynced, so a crash leaves
either the whole entry or none. tags.json is replaced atomically (temp file, fsync,
os.replace, directory fsync). A model is validated (`model.load_model`, the sha256
recorded in meta.json, and the caller's `check`: can the running strategy use it?)
before any tag points to it: a corrupt, foreign or unusable model raises ModelError and
changes nothing on disk. An unknown id raises UnknownModelError naming it.

Thread-safe (one lock): the daemon calls it from executor threads so that fsyncs never
block the event loop.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import structlog

from nautilus_hmm.hmm.errors import HmmError, ModelError
from nautilus_hmm.hmm.model import RegimeModel, load_model

log = structlog.get_logger("hmm")

TAGS = ("production", "canary")
HISTORY_LIMIT = 200
ID_RE = re.compile(r"^m-\d{8}T\d{6}Z-[0-9a-f]{8}(-\d+)?$")
MODEL_FILE = "model.json"
META_FILE = "meta.json"
TAGS_FILE = "tags.json"

# Raises ModelError when the caller cannot run a model (another base interval ...).
ModelCheck = Callable[[RegimeModel], None]


class RegistryError(HmmError):
    """A registry operation is impossible (no previous production, unreadable tags ...);
    `path` is the registry file at fault, when one is."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else str(path)
        super().__init__(message)


class UnknownModelError(RegistryError, KeyError):
    """No model with this id in the registry."""

    def __init__(self, model_id: str, root: str | Path) -> None:
        self.model_id = model_id
        super().__init__(f"model {model_id!r} is not in the registry {root}")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


@dataclass(frozen=True, slots=True)
class ModelMeta:
    """What meta.json says about one model."""

    id: str
    created_at: str
    model_sha256: str
    data_sha256: str
    first_ts_ns: int
    last_ts_ns: int
    n_bars: int
    instrument: str | None
    parent_id: str | None = None
    status: str = "candidate"
    metrics: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {f: getattr(self, f) for f in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelMeta:
        """Inverse of to_dict (unknown keys are ignored: newer writers may add some)."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass(frozen=True, slots=True)
class Tags:
    """The tags file: current production/canary and the production history."""

    production: str | None = None
    canary: str | None = None
    previous_production: tuple[str, ...] = ()
    history: tuple[dict[str, Any], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {"production": self.production, "canary": self.canary,
                "previous_production": list(self.previous_production), "history": list(self.history)}

    def tag_of(self, model_id: str) -> str | None:
        """'production', 'canary' or None."""
        if model_id == self.production:
            return "production"
        if model_id == self.canary:
            return "canary"
        return None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, data: bytes) -> None:
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` atomically: temp file in the same directory, fsync, rename, fsync dir."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        _write_file(tmp, data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ModelRegistry:
    """Models by id, tags and rollback; see the module docstring for the rules."""

    def __init__(self, root: str | Path, now: Any = _utc_now) -> None:
        self.root = Path(root)
        self._now = now
        self._lock = threading.RLock()
        self.root.mkdir(parents=True, exist_ok=True)
        self._clean_temp()

    # ------------------------------------------------------------ reading

    def _clean_temp(self) -> None:
        """Remove temp directories and files a crash left behind (never a published entry)."""
        for p in self.root.iterdir():
            if p.name.startswith(".") and (p.name.endswith(".tmp") or p.name.startswith(".new-")):
                if p.is_dir():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)

    def _dir(self, model_id: str) -> Path:
        if not isinstance(model_id, str) or not ID_RE.match(model_id):
            raise UnknownModelError(str(model_id), self.root)
        d = self.root / model_id
        if not (d / MODEL_FILE).is_file():
            raise UnknownModelError(model_id, self.root)
        return d

    def ids(self) -> list[str]:
        """Every model id, oldest first."""
        return sorted(p.name for p in self.root.iterdir()
                      if p.is_dir() and ID_RE.match(p.name) and (p / MODEL_FILE).is_file())

    def __contains__(self, model_id: object) -> bool:
        return isinstance(model_id, str) and bool(ID_RE.match(model_id)) and \
            (self.root / model_id / MODEL_FILE).is_file()

    def meta(self, model_id: str) -> ModelMeta:
        """meta.json of a model (ModelError if it is unreadable)."""
        path = self._dir(model_id) / META_FILE
        try:
            return ModelMeta.from_dict(orjson.loads(path.read_bytes()))
        except (OSError, orjson.JSONDecodeError, TypeError) as exc:
            raise ModelError("<meta>", f"cannot read: {exc}", str(path)) from exc

    def get(self, model_id: str) -> RegimeModel:
        """Load and validate a model: format (load_model) and the sha256 in meta.json."""
        entry = self.root / model_id if isinstance(model_id, str) and ID_RE.match(model_id) else None
        if entry is not None and entry.is_dir() and not (entry / MODEL_FILE).is_file():
            # A published entry whose model file went missing is damage, not an unknown id.
            raise ModelError("<file>", "missing: the model directory has no model file", str(entry / MODEL_FILE))
        d = self._dir(model_id)
        model = load_model(d / MODEL_FILE)
        meta = self.meta(model_id)
        if meta.model_sha256 and model.content_sha256 != meta.model_sha256:
            raise ModelError("<file>", f"sha256 {model.content_sha256[:12]}… does not match meta.json "
                             f"({meta.model_sha256[:12]}…): the file was changed", str(d / MODEL_FILE))
        return model

    def tags(self) -> Tags:
        """The current tags (empty when the file does not exist yet)."""
        path = self.root / TAGS_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return Tags()
        except OSError as exc:
            raise RegistryError(f"{path}: cannot read: {exc.strerror or exc}", path) from exc
        try:
            obj = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise RegistryError(f"{path}: not a valid tags file: {exc}", path) from exc
        if not isinstance(obj, dict):
            raise RegistryError(f"{path}: not a valid tags file: a JSON {type(obj).__name__}, not an object", path)
        # Every field is checked: a wrong type is damage, named with its value.
        for name in TAGS:
            value = obj.get(name)
            if value is not None and not isinstance(value, str):
                raise RegistryError(f"{path}: not a valid tags file: {name} = {value!r} is not a model id", path)
        for name in ("previous_production", "history"):
            value = obj.get(name, [])
            if not isinstance(value, list):
                raise RegistryError(f"{path}: not a valid tags file: {name} = {value!r} is not a list", path)
        bad = [v for v in obj.get("previous_production", []) if not isinstance(v, str)]
        if bad:
            raise RegistryError(f"{path}: not a valid tags file: previous_production holds {bad[0]!r}, "
                                "not a model id", path)
        return Tags(production=obj.get("production"), canary=obj.get("canary"),
                    previous_production=tuple(obj["previous_production"]) if "previous_production" in obj else (),
                    history=tuple(obj.get("history", ())))

    def list(self) -> list[dict[str, Any]]:
        """Every model's meta with its current tag, newest first."""
        tags = self.tags()
        out = []
        for model_id in reversed(self.ids()):
            try:
                meta = self.meta(model_id).to_dict()
            except ModelError as exc:
                meta = {"id": model_id, "error": str(exc)}
            meta["tag"] = tags.tag_of(model_id)
            meta["status"] = meta["tag"] or ("retired" if model_id in tags.previous_production
                                             else meta.get("status", "candidate"))
            out.append(meta)
        return out

    # ------------------------------------------------------------ writing

    def new_id(self, model: RegimeModel) -> str:
        """`m-<UTC now>-<sha8>` (suffixed -2, -3 ... if that name is taken by other content)."""
        stamp = self._now().strftime("%Y%m%dT%H%M%SZ")
        base = f"m-{stamp}-{model.content_sha256[:8]}"
        model_id, n = base, 1
        while (self.root / model_id).exists():
            n += 1
            model_id = f"{base}-{n}"
        return model_id

    def find(self, model_sha256: str) -> str | None:
        """Id of a stored model with this content sha256, if any."""
        for model_id in self.ids():
            try:
                if self.meta(model_id).model_sha256 == model_sha256:
                    return model_id
            except ModelError:
                continue
        return None

    def add(self, model: RegimeModel, *, parent_id: str | None = None,
            metrics: Mapping[str, Any] | None = None, source: str = "") -> str:
        """Store a model (atomically); returns its id. The same content returns the existing id."""
        data = model.to_json()
        sha = hashlib.sha256(data).hexdigest()
        with self._lock:
            existing = self.find(sha)
            if existing is not None:
                return existing
            model_id = self.new_id(model)
            t = model.training
            meta = ModelMeta(id=model_id, created_at=model.created_at, model_sha256=sha,
                             data_sha256=t.data_sha256, first_ts_ns=t.first_ts_ns, last_ts_ns=t.last_ts_ns,
                             n_bars=t.n_bars, instrument=model.instrument, parent_id=parent_id,
                             metrics=dict(metrics or {}), source=source)
            tmp = self.root / f".new-{model_id}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            try:
                _write_file(tmp / MODEL_FILE, data)
                _write_file(tmp / META_FILE, orjson.dumps(meta.to_dict(), option=orjson.OPT_INDENT_2))
                _fsync_dir(tmp)
                os.rename(tmp, self.root / model_id)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            _fsync_dir(self.root)
        log.info("hmm_model_added", model_id=model_id, parent_id=parent_id, bars=t.n_bars, source=source)
        return model_id

    def _write_tags(self, tags: Tags) -> None:
        atomic_write(self.root / TAGS_FILE, orjson.dumps(tags.to_dict(), option=orjson.OPT_INDENT_2))

    def _event(self, tags: Tags, event: str, model_id: str | None, **extra: Any) -> tuple[dict[str, Any], ...]:
        entry = {"at": self._now().isoformat(timespec="seconds").replace("+00:00", "Z"),
                 "event": event, "id": model_id, **extra}
        return (*tags.history, entry)[-HISTORY_LIMIT:]

    def _set_status(self, model_id: str | None, status: str) -> None:
        """Mirror a tag into meta.json (best effort: tags.json is the truth)."""
        if model_id is None or model_id not in self:
            return
        try:
            meta = self.meta(model_id)
            data = {**meta.to_dict(), "status": status}
            atomic_write(self.root / model_id / META_FILE, orjson.dumps(data, option=orjson.OPT_INDENT_2))
        except (ModelError, OSError) as exc:
            log.warning("hmm_registry_status_not_written", model_id=model_id, error=str(exc))

    def _validated(self, model_id: str, check: ModelCheck | None) -> RegimeModel:
        """`get` plus the caller's check; raises before anything is written."""
        model = self.get(model_id)  # unknown → UnknownModelError, corrupt → ModelError
        if check is not None:
            check(model)
        return model

    def promote(self, model_id: str, check: ModelCheck | None = None) -> str | None:
        """Make a (validated) model production; returns the previous production id.

        The canary tag is cleared if it pointed to this model. Promoting the current
        production is a no-op. A model failing validation or `check` changes nothing.
        """
        with self._lock:
            self._validated(model_id, check)
            tags = self.tags()
            previous = tags.production
            if previous == model_id:
                return previous
            history = tags.previous_production
            if previous is not None:
                history = (*history, previous)[-HISTORY_LIMIT:]
            canary = None if tags.canary == model_id else tags.canary
            self._write_tags(Tags(production=model_id, canary=canary, previous_production=history,
                                  history=self._event(tags, "promote", model_id, previous=previous)))
            self._set_status(model_id, "production")
            self._set_status(previous, "retired")
        log.warning("hmm_model_promoted", model_id=model_id, previous=previous)
        return previous

    def set_canary(self, model_id: str | None, check: ModelCheck | None = None) -> str | None:
        """Tag a (validated) model canary, or clear the tag with None; returns the previous canary."""
        with self._lock:
            if model_id is not None:
                self._validated(model_id, check)
            tags = self.tags()
            if model_id is not None and model_id == tags.production:
                raise RegistryError(f"model {model_id!r} is production; it cannot also be the canary")
            previous = tags.canary
            if previous == model_id:
                return previous
            self._write_tags(Tags(production=tags.production, canary=model_id,
                                  previous_production=tags.previous_production,
                                  history=self._event(tags, "canary", model_id, previous=previous)))
            self._set_status(model_id, "canary")
            if previous is not None and previous != tags.production:
                self._set_status(previous, "candidate")
        log.warning("hmm_model_canary", model_id=model_id, previous=previous)
        return previous

    def rollback(self, check: ModelCheck | None = None) -> str:
        """Production goes back to the previous production model; returns its id.

        Previous models that no longer load or fail `check` are skipped (logged);
        RegistryError when there is none left (nothing written then). The rolled-back
        model is not pushed onto the history.
        """
        with self._lock:
            tags = self.tags()
            history = list(tags.previous_production)
            skipped: list[str] = []
            while history:
                candidate = history.pop()
                if candidate == tags.production:
                    continue
                try:
                    self._validated(candidate, check)
                except (ModelError, RegistryError) as exc:
                    log.error("hmm_rollback_candidate_invalid", model_id=candidate, error=str(exc))
                    skipped.append(candidate)
                    continue
                canary = None if tags.canary == candidate else tags.canary
                self._write_tags(Tags(production=candidate, canary=canary, previous_production=tuple(history),
                                      history=self._event(tags, "rollback", candidate, previous=tags.production,
                                                          skipped=skipped)))
                self._set_status(candidate, "production")
                self._set_status(tags.production, "rolled_back")
                log.warning("hmm_model_rolled_back", model_id=candidate, previous=tags.production)
                return candidate
            detail = f" (skipped invalid: {', '.join(skipped)})" if skipped else ""
            raise RegistryError(f"no previous production model to roll back to{detail}")
