# -*- coding: utf-8 -*-
# Copyright (c) 2026 homelab.gpu_passthrough maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading and writing the host's configuration files safely (service layer, standard library only).

The rules every module that edits a host file follows:

- a path option stays inside the module's ``root``: ``..`` or a symlink that leads out is refused;
- a file that is only read is decoded with replacement, so odd bytes never crash a read;
- a file that is edited must be UTF-8 text and a regular file, else it is refused and left as it is;
- before anything is written (backup included) the target is checked: not immutable or append-only
  (``chattr``), not on a read-only mount, writable by this user;
- the new content goes to a temporary file beside the target, is flushed to disk and renamed over it,
  and the temporary file is removed on every error path.

A refusal is a ``PassthroughError`` naming the file, the problem and the fix.
"""

from __future__ import annotations

import errno
import os
import tempfile

from ansible_collections.homelab.gpu_passthrough.plugins.module_utils.errors import PassthroughError

try:
    import fcntl
except ImportError:  # pragma: no cover - not a Linux controller
    fcntl = None

# linux/fs.h: FS_IOC_GETFLAGS and the flags that forbid replacing a file.
FS_IOC_GETFLAGS = 0x80086601
FS_IMMUTABLE_FL = 0x10
FS_APPEND_FL = 0x20


def confine(root, path, option):
    """``path`` (an option value, absolute or not) below ``root``; refused when it leads outside it.

    Both the written path (``..`` components) and where its symlinks resolve are checked, so a link
    inside the root pointing out of it is refused as well.
    """
    root = root or "/"
    if not path:
        raise PassthroughError("%s is empty." % option, fix="Give the path of the file.", link="input")
    real_root = os.path.realpath(root)
    full = os.path.normpath(os.path.join(root, str(path).lstrip("/")))
    for candidate, how in ((full, "its path"), (os.path.realpath(full), "a symlink on its path")):
        base = os.path.normpath(root) if how == "its path" else real_root
        if candidate != base and not candidate.startswith(base.rstrip("/") + "/"):
            raise PassthroughError(
                "%s=%s leads outside %s (%s ends at %s)." % (option, path, root, how, candidate),
                fix="Give a path inside %s without '..' and without symlinks that point out of it." % root,
                link="input",
            )
    return full


def under(root, path):
    """``path`` (absolute) below ``root``, not checked: for the fixed paths a module reads, never for an option value."""
    return os.path.join(root or "/", path.lstrip("/"))


def read_lenient(path):
    """A file's text for reading only, odd bytes replaced; None when missing or not a regular file."""
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return None


def read_for_edit(path, option=None):
    """A file's text before it is edited; None when it does not exist.

    Refuses a directory (or other non-regular file) and content that is not UTF-8, since a rewrite
    would not keep those bytes.
    """
    name = "%s (%s)" % (path, option) if option else path
    if os.path.lexists(path) and not os.path.isfile(path):
        kind = "a directory" if os.path.isdir(path) else "not a regular file"
        raise PassthroughError(
            "%s is %s, so it cannot be edited." % (name, kind),
            fix="Point %s at the file itself, or move %s aside." % (option or "the option", path),
            link="file",
        )
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise PassthroughError(
            "Cannot read %s: %s." % (name, err.strerror or err),
            fix="Run the task with become: true, or fix the permissions of %s." % path,
            link="file",
        ) from err
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise PassthroughError(
            "%s is not UTF-8 text (byte 0x%02x at offset %d, line %d), so it is left as it is." % (name, data[err.start], err.start, line),
            fix="Remove or re-encode the bytes on line %d of %s (iconv -f latin1 -t utf-8), then run again." % (line, path),
            link="file",
        ) from err


def _flags(path):
    if fcntl is None:
        return 0
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return 0
    try:
        buf = bytearray(8)
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf, True)
        return int.from_bytes(buf[:4], "little")
    except OSError:
        return 0  # file system without attribute flags (tmpfs before 6.0, vfat, overlay)
    finally:
        os.close(fd)


def _refusal(path, problem, fix):
    return PassthroughError("Cannot write %s: %s; nothing was changed." % (path, problem), fix=fix, link="file")


def _immutable_fix(path):
    return "Run chattr -i %s (lsattr %s shows the i or a flag), or leave the file to whoever set it." % (path, path)


def check_writable(path):
    """Refuse before writing anything when ``path`` cannot be replaced; names the fix."""
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        raise _refusal(path, "its directory %s does not exist" % directory, "Create %s, or point the option at the right file." % directory)
    try:
        read_only = bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    if read_only:
        raise _refusal(path, "%s is on a read-only mount" % directory, "Remount it read-write (mount -o remount,rw <mount point>) and run again.")
    for target in (path, directory):
        flags = _flags(target) if os.path.exists(target) else 0
        if flags & (FS_IMMUTABLE_FL | FS_APPEND_FL):
            kind = "immutable" if flags & FS_IMMUTABLE_FL else "append-only"
            raise _refusal(path, "%s is %s (chattr +%s)" % (target, kind, "i" if kind == "immutable" else "a"), _immutable_fix(target))
    if (os.path.exists(path) and not os.access(path, os.W_OK)) or not os.access(directory, os.W_OK):
        raise _refusal(path, "it is not writable for this user", "Run the task with become: true (as root), or fix the permissions of %s." % path)


def _error_fix(path, err):
    if err.errno == errno.EROFS:
        return "it is on a read-only mount", "Remount it read-write (mount -o remount,rw <mount point>) and run again."
    if err.errno == errno.EPERM:
        return "the system refused to replace it (%s)" % err.strerror, _immutable_fix(path)
    if err.errno == errno.EACCES:
        return "permission denied", "Run the task with become: true (as root), or fix the permissions of %s." % path
    return err.strerror or str(err), "Check %s and its directory, then run again." % path


def write_atomic(path, text):
    """Replace ``path`` with ``text`` (UTF-8), keeping an existing file's mode and owner.

    The temporary file lives beside the target and is removed on every error path.
    """
    check_writable(path)
    directory = os.path.dirname(path) or "."
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(path))
    except OSError as err:
        problem, fix = _error_fix(path, err)
        raise _refusal(path, problem, fix) from err
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if os.path.exists(path):
            st = os.stat(path)
            os.chmod(tmp, st.st_mode & 0o7777)
            try:
                os.chown(tmp, st.st_uid, st.st_gid)
            except PermissionError:
                pass
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as err:
        _remove(tmp)
        problem, fix = _error_fix(path, err)
        raise _refusal(path, problem, fix) from err
    except BaseException:
        _remove(tmp)
        raise


def _remove(path):
    try:
        os.unlink(path)
    except OSError:
        pass
