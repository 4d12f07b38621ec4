"""linux.resources.blockIO throttles name the kernel's disk (254:0, /dev/vda) and are enforced."""

from __future__ import annotations

from runtime_helpers import make_bundle, new_runtime

from virtlevels.kernel import scripted as sys
from virtlevels.kernel.vfs.constants import AT_FDCWD, O_WRONLY

MiB = 1 << 20


def _writer(out: dict, total: int):
    def prog(*_a):
        fd = yield sys.openat(AT_FDCWD, "/dev/vda", O_WRONLY)
        t0 = yield sys.clock_gettime(1)
        for _ in range(total // (64 * 1024)):
            yield sys.write(fd, b"c" * 64 * 1024)
        out["elapsed"] = (yield sys.clock_gettime(1)) - t0
        return 0
    return prog


def test_blockio_throttle_is_written_for_the_disk_and_throttles(tmp_path):
    rt = new_runtime()
    k = rt.kernel
    blockio = {"throttleWriteBpsDevice": [{"major": 254, "minor": 0, "rate": MiB}],
               "throttleReadIOPSDevice": [{"major": 254, "minor": 0, "rate": 50}]}
    bundle = make_bundle(tmp_path / "b", ["sleep", "100"], linux={"resources": {"blockIO": blockio}})
    c = rt.create("db", bundle)
    cg = k.cgroups.lookup(c.cgroup)
    assert cg is not None
    io_max = k.read_file(c.cgroup_dir + "/io.max").decode()
    assert io_max == "254:0 rbps=max wbps=1048576 riops=50 wiops=max\n"
    out: dict = {}
    k.spawn(_writer(out, 2 * MiB), ["w"], cgroup=cg)
    k.run(until=k.world.now + 10 * 1_000_000_000)
    assert out["elapsed"] >= 2_000_000_000 - 100_000_000  # 2 MiB at 1 MiB/s
    assert "wbytes=2097152 rios=0 wios=32" in k.read_file(c.cgroup_dir + "/io.stat").decode()

