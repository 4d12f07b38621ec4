"""Linux VFS numbers with their asm-generic (RISC-V) values.

Sources: include/uapi/asm-generic/fcntl.h, include/uapi/linux/stat.h, include/uapi/linux/fcntl.h,
include/uapi/linux/mount.h, include/linux/fs.h (MAY_*), include/uapi/linux/limits.h.
"""

from __future__ import annotations

# -- open(2) flags (asm-generic/fcntl.h; octal as in the header) ------------------------------
O_ACCMODE = 0o3
O_RDONLY = 0o0
O_WRONLY = 0o1
O_RDWR = 0o2
O_CREAT = 0o100
O_EXCL = 0o200
O_NOCTTY = 0o400
O_TRUNC = 0o1000
O_APPEND = 0o2000
O_NONBLOCK = 0o4000
O_DSYNC = 0o10000
O_DIRECT = 0o40000
O_LARGEFILE = 0o100000
O_DIRECTORY = 0o200000
O_NOFOLLOW = 0o400000
O_NOATIME = 0o1000000
O_CLOEXEC = 0o2000000
O_PATH = 0o10000000
#: Flags F_SETFL may change (fs/fcntl.c SETFL_MASK, the ones modelled here).
SETFL_MASK = O_APPEND | O_NONBLOCK | O_NOATIME | O_DIRECT

# -- *at() flags (linux/fcntl.h) ---------------------------------------------------------------
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_REMOVEDIR = 0x200
AT_EACCESS = 0x200
AT_SYMLINK_FOLLOW = 0x400
AT_EMPTY_PATH = 0x1000

# -- renameat2(2) --------------------------------------------------------------------------------
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
RENAME_WHITEOUT = 4

# -- fcntl(2) ------------------------------------------------------------------------------------
F_DUPFD = 0
F_GETFD = 1
F_SETFD = 2
F_GETFL = 3
F_SETFL = 4
F_DUPFD_CLOEXEC = 1030
FD_CLOEXEC = 1

# -- lseek(2) ------------------------------------------------------------------------------------
SEEK_SET = 0
SEEK_CUR = 1
SEEK_END = 2

# -- access(2) and the kernel's MAY_* masks (the low three bits coincide) ------------------------
F_OK = 0
X_OK = 1
W_OK = 2
R_OK = 4
MAY_EXEC = 1
MAY_WRITE = 2
MAY_READ = 4

# -- file types and mode bits (linux/stat.h) -----------------------------------------------------
S_IFMT = 0o170000
S_IFSOCK = 0o140000
S_IFLNK = 0o120000
S_IFREG = 0o100000
S_IFBLK = 0o060000
S_IFDIR = 0o040000
S_IFCHR = 0o020000
S_IFIFO = 0o010000
S_ISUID = 0o4000
S_ISGID = 0o2000
S_ISVTX = 0o1000
S_IALLUGO = 0o7777

# -- getdents64 d_type (linux/fs_types.h: the file type shifted right by 12) ---------------------
DT_UNKNOWN = 0
DT_FIFO = 1
DT_CHR = 2
DT_DIR = 4
DT_BLK = 6
DT_REG = 8
DT_LNK = 10
DT_SOCK = 12

# -- mount(2) flags (linux/mount.h) ----------------------------------------------------------------
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_POSIXACL = 1 << 16
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MS_PROPAGATION = MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE
#: The per-mount flags a bind remount may change (fs/namespace.c, flags_to_mnt_flags).
MS_MNT_FLAGS = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC

# -- umount2(2) ----------------------------------------------------------------------------------
MNT_FORCE = 1
MNT_DETACH = 2
MNT_EXPIRE = 4
UMOUNT_NOFOLLOW = 8

# -- limits (linux/limits.h; path_resolution(7)) ------------------------------------------------
PATH_MAX = 4096
NAME_MAX = 255
#: Total symlinks followed in one resolution (include/linux/namei.h MAXSYMLINKS; path_resolution(7)).
MAXSYMLINKS = 40
#: pipe(7): default capacity since Linux 2.6.11, and the atomic-write limit.
PIPE_DEF_BUFFERS_BYTES = 65536
PIPE_BUF = 4096
PAGE_SIZE = 4096

# -- overlayfs (Documentation/filesystems/overlayfs.rst) -----------------------------------------
OVL_OPAQUE_XATTR = "trusted.overlay.opaque"


def s_isdir(mode: int) -> bool:
    return mode & S_IFMT == S_IFDIR


def s_isreg(mode: int) -> bool:
    return mode & S_IFMT == S_IFREG


def s_islnk(mode: int) -> bool:
    return mode & S_IFMT == S_IFLNK


def s_ischr(mode: int) -> bool:
    return mode & S_IFMT == S_IFCHR


def s_isfifo(mode: int) -> bool:
    return mode & S_IFMT == S_IFIFO


def dtype_of(mode: int) -> int:
    """The d_type for a mode: its S_IFMT bits shifted right by 12 (fs_umode_to_dtype)."""
    return (mode & S_IFMT) >> 12
