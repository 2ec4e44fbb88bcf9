"""What the image checks found, kept on disk between runs (the source readers' `verify_images`).

Decoding every image of a source to find corrupt ones (`locnet_tf.core.image_files.inspect`)
costs about 20 ms a phone photo: minutes for 10,000 of them, in each of train,
evaluate and export. The verdict for a file that has not changed since is
the same, so accepted files are remembered here, in a SQLite file:

    ${XDG_CACHE_HOME:-~/.cache}/locnet_tf/image_checks.sqlite3

`LOCNET_TF_CHECK_CACHE` names another file, or `0` turns it off.

A file counts as unchanged while its path, device, inode, size, modification
time and status-change time (`ctime`, which every write sets and no program
can set back) are all the same, as git's index tells unchanged files; and
the key also holds the versions of the checks, Pillow and simplejpeg, so a
newer checker checks again. Only files found good are remembered (a bad one
is checked, and reported, every time), and only once they are a few seconds
old (a file rewritten within the clock's resolution could otherwise keep its
times). The pixel limit (`LOCNET_TF_MAX_PIXELS`) is applied again to what is
remembered. Anything going wrong with the cache file (locked, read-only,
damaged) turns it off for the process, silently: it only ever saves time.
"""

import dataclasses
import json
import logging
import os
import pathlib
import sqlite3
import threading
import time

import PIL
import simplejpeg

from locnet_tf.core import image_files as images

logger = logging.getLogger("locnet_tf.data")

CACHE_ENV = "LOCNET_TF_CHECK_CACHE"
# Bump when `image_files.inspect` checks something new: what it accepted before is checked again.
CHECKS_VERSION = 2
# Files younger than this (seconds, by mtime and ctime) are not remembered.
SETTLED_SECONDS = 3.0


def cache_path():
    """The cache file in use, or None when it is turned off."""
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        value = value.strip()
        return None if value.lower() in ("", "0", "off", "false", "no") else pathlib.Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "locnet_tf" / "image_checks.sqlite3"


class CheckCache:
    """Accepted `image_files.ImageInfo` by file (see the module docstring); every method fails silently."""

    def __init__(self, path):
        self.path = pathlib.Path(path)
        self.version = f"{CHECKS_VERSION}/{PIL.__version__}/{simplejpeg.__version__}"
        self._db = None
        self._failed = False
        self._pending = {}
        self._lock = threading.Lock()  # one connection, for every thread in turn

    def _connect(self):
        # Under self._lock.
        if self._db is None and not self._failed:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(str(self.path), timeout=2.0, check_same_thread=False)
                self._db.execute("CREATE TABLE IF NOT EXISTS checks (key TEXT PRIMARY KEY, info TEXT NOT NULL)")
                self._db.commit()
            except (sqlite3.Error, OSError) as error:
                self._fail(error)
        return self._db

    def _fail(self, error):
        # Under self._lock.
        logger.debug("image check cache %s turned off: %s", self.path, error)
        self._failed = True
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:
                pass
        self._db = None

    def key(self, path, stat, verify):
        fields = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, int(bool(verify)))
        return "\0".join([self.version, os.path.abspath(path), *map(str, fields)])

    def get(self, path, stat, verify):
        """The remembered ImageInfo of a file (checked with `verify` or more), or None."""
        keys = [self.key(path, stat, True)] + ([] if verify else [self.key(path, stat, False)])
        with self._lock:
            db = self._connect()
            if db is None:
                return None
            try:
                for key in keys:
                    row = db.execute("SELECT info FROM checks WHERE key = ?", (key,)).fetchone()
                    if row:
                        return images.ImageInfo(**json.loads(row[0]))
            except (sqlite3.Error, ValueError, TypeError) as error:
                self._fail(error)
        return None

    def put(self, path, stat, verify, info):
        """Remembers an accepted file (written by `flush`), if it is old enough to trust its times."""
        if self._failed or time.time() - max(stat.st_mtime_ns, stat.st_ctime_ns) / 1e9 < SETTLED_SECONDS:
            return
        key = self.key(path, stat, verify)
        with self._lock:
            self._pending[key] = json.dumps(dataclasses.asdict(info))

    def flush(self):
        """Writes what `put` collected, in one transaction."""
        with self._lock:
            pending, self._pending = self._pending, {}
            if not pending:
                return
            db = self._connect()
            if db is None:
                return
            try:
                with db:
                    db.executemany("INSERT OR REPLACE INTO checks (key, info) VALUES (?, ?)", pending.items())
            except sqlite3.Error as error:
                self._fail(error)


_CACHES = {}


def get_cache():
    """The `CheckCache` of the current `LOCNET_TF_CHECK_CACHE` setting, or None when it is off."""
    path = cache_path()
    if path is None:
        return None
    if path not in _CACHES:
        _CACHES[path] = CheckCache(path)
    return _CACHES[path]
