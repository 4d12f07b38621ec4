"""The block layer (/dev/vda, 254:0) and the io controller's enforcement: io.stat, io.max."""

from __future__ import annotations

from virtlevels.kernel import scripted as sys
from virtlevels.kernel.kernel import Kernel
from virtlevels.kernel.vfs.constants import AT_FDCWD, O_RDONLY, O_RDWR, O_WRONLY, S_IFBLK, S_IFMT
from virtlevels.machine.board import virt_machine
from virtlevels.world import World

MiB = 1 << 20


def _run(k: Kernel, prog, cgroup: str | None = None) -> dict:
    out: dict = {}

    def main(*_a):
        yield from prog(out)
        return 0

    k.spawn(main, ["p"], cgroup=cgroup if cgroup is None else "/" + cgroup)
    k.run()
    return out


def _mkcg(k: Kernel, *path: str) -> None:
    cg = k.cgroups.root
    for name in path:
        k.cgroups.set_subtree_control(cg, {"io"}, set())
        cg = k.cgroups.mkdir(cg, name)


def _io_max(k: Kernel, path: str, text: str) -> None:
    k.cgroups.write_file(k.cgroups.lookup("/" + path), "io.max", text, k.init_creds)


def _writer(total: int, chunk: int = 64 * 1024):
    def prog(out):
        fd = yield sys.openat(AT_FDCWD, "/dev/vda", O_WRONLY)
        t0 = yield sys.clock_gettime(1)
        done = 0
        while done < total:
            n = yield sys.write(fd, bytes([done // chunk & 0xFF]) * chunk)
            assert n == chunk
            done += n
        t1 = yield sys.clock_gettime(1)
        out["elapsed"] = t1 - t0
    return prog


def test_write_then_read_round_trips_with_partial_sectors() -> None:
    k = Kernel()
    payload = bytes(range(256)) * 7  # 1792 bytes: spans partial sectors at both ends

    def prog(out):
        fd = yield sys.openat(AT_FDCWD, "/dev/vda", O_RDWR)
        yield sys.write(fd, b"\xAA" * 1024)
        yield sys.lseek(fd, 100, 0)
        out["w"] = yield sys.write(fd, payload)
        yield sys.lseek(fd, 0, 0)
        out["r"] = yield sys.read(fd, 2048)
    out = _run(k, prog)
    assert out["w"] == len(payload)
    assert out["r"] == b"\xAA" * 100 + payload + bytes(2048 - 100 - len(payload))


def test_lseek_and_fstat_on_the_device() -> None:
    k = Kernel(disk_size=8 * MiB)

    def prog(out):
        fd = yield sys.openat(AT_FDCWD, "/dev/vda", O_RDONLY)
        out["st"] = yield sys.fstat(fd)
        out["end"] = yield sys.lseek(fd, 0, 2)
        out["back"] = yield sys.lseek(fd, -512, 2)
        out["tail"] = yield sys.read(fd, 4096)
        out["eof"] = yield sys.read(fd, 10)
    out = _run(k, prog)
    st = out["st"]
    assert st.st_mode & S_IFMT == S_IFBLK
    assert st.st_rdev == (254 << 8) | 0
    assert st.st_size == 8 * MiB
    assert out["end"] == 8 * MiB and out["back"] == 8 * MiB - 512
    assert out["tail"] == bytes(512) and out["eof"] == b""


def test_write_past_the_end_is_enospc() -> None:
    k = Kernel(disk_size=4096)

    def prog(out):
        fd = yield sys.openat(AT_FDCWD, "/dev/vda", O_WRONLY)
        out["short"] = yield sys.write(fd, b"x" * 5000)
        out["full"] = yield sys.write(fd, b"x")
    out = _run(k, prog)
    assert out == {"short": 4096, "full": -28}


def test_io_stat_counts_bytes_and_ios_exactly() -> None:
    k = Kernel()
    _mkcg(k, "a")

    def prog(out):
        fd = yield sys.openat(AT_FDCWD, "/dev/vda", O_RDWR)
        for _ in range(3):
            yield sys.write(fd, b"z" * 1000)
        yield sys.lseek(fd, 0, 0)
        yield sys.read(fd, 700)
        yield sys.read(fd, 5)
    _run(k, prog, cgroup="a")
    line = "254:0 rbytes=705 wbytes=3000 rios=2 wios=3 dbytes=0 dios=0\n"
    assert k.read_file("/sys/fs/cgroup/a/io.stat").decode() == line
    assert k.read_file("/sys/fs/cgroup/io.stat").decode() == line  # hierarchical at the root


def test_wbps_limit_throttles_in_simulated_time() -> None:
    free = Kernel()
    out_free = _run(free, _writer(4 * MiB))
    assert out_free["elapsed"] < 500_000_000  # without a limit: well under a second

    k = Kernel()
    _mkcg(k, "slow")
    _io_max(k, "slow", f"254:0 wbps={MiB}")
    out = _run(k, _writer(4 * MiB), cgroup="slow")
    assert out["elapsed"] >= 4_000_000_000 - 1_000_000_000 // 16  # 4 MiB at 1 MiB/s (first chunk free)
    assert out["elapsed"] < 5_000_000_000
    assert "wbytes=4194304" in k.read_file("/sys/fs/cgroup/slow/io.stat").decode()


def test_riops_limits_operations() -> None:
    k = Kernel()
    _mkcg(k, "r")
    _io_max(k, "r", "254:0 riops=10")

    def prog(out):
        fd = yield sys.openat(AT_FDCWD, "/dev/vda", O_RDONLY)
        t0 = yield sys.clock_gettime(1)
        for _ in range(20):
            yield sys.read(fd, 512)
        out["elapsed"] = (yield sys.clock_gettime(1)) - t0
    out = _run(k, prog, cgroup="r")
    assert 1_900_000_000 <= out["elapsed"] < 2_200_000_000  # 20 reads at 10/s


def test_limits_compose_up_the_hierarchy() -> None:
    k = Kernel()
    _mkcg(k, "parent", "child")
    _io_max(k, "parent", f"254:0 wbps={MiB}")
    _io_max(k, "parent/child", f"254:0 wbps={4 * MiB}")
    out = _run(k, _writer(2 * MiB), cgroup="parent/child")
    assert out["elapsed"] >= 2_000_000_000 - 100_000_000  # the parent's 1 MiB/s binds
    assert "wios=32" in k.read_file("/sys/fs/cgroup/parent/io.stat").decode()


def test_deterministic() -> None:
    def once() -> tuple[int, bytes]:
        k = Kernel()
        _mkcg(k, "d")
        _io_max(k, "d", "254:0 wbps=300000 wiops=7")
        out = _run(k, _writer(256 * 1024, 4096), cgroup="d")
        return out["elapsed"], k.read_file("/sys/fs/cgroup/d/io.stat")

    assert once() == once()


def test_machine_backed_disk_lands_in_the_device_backing() -> None:
    world = World(entry_points=False)
    disk = bytearray(256 * 1024)
    m = virt_machine(world=world, disk=disk)
    k = Kernel(world, machine=m)
    dev = m.device("blk0")
    payload = b"virtlevels!" * 500  # 5500 bytes, several DMA pages

    def prog(out):
        fd = yield sys.openat(AT_FDCWD, "/dev/vda", O_RDWR)
        out["st"] = yield sys.fstat(fd)
        yield sys.lseek(fd, 1000, 0)
        yield sys.write(fd, payload)
        yield sys.lseek(fd, 1000, 0)
        out["r"] = yield sys.read(fd, len(payload))
    out = _run(k, prog)
    assert disk[1000:1000 + len(payload)] == payload
    assert out["r"] == payload
    assert out["st"].st_size == len(disk)
    assert k.disk is not None and k.disk.driver.commands > 0
    assert dev.capacity == len(disk) // 512
