# The class comparison's guest workload (busybox sh, run by `lockwatch vm`
# on the lockdep kernel with --net): heap objects and module locks of a NIC,
# a bridge, a loop device and ext4, each loaded as a module, then a mixed
# load from stress-ng. A part whose module the kernel lacks is skipped and
# said so ("classes-workload: no ...").
echo 1 >/proc/sys/kernel/bpf_stats_enabled
have() { modprobe "$1" 2>/dev/null || [ -d "/sys/module/$1" ] || grep -qw "$1" /proc/filesystems; }
ip link set lo up
if have virtio_pci && have virtio_net && have bridge; then
    i=0
    while ! ip link show eth0 >/dev/null 2>&1 && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    brctl addbr br0
    brctl addif br0 eth0
    ip link set eth0 up
    ip link set br0 up
    ip addr add 10.0.2.15/24 dev br0
    ip route add default via 10.0.2.2
    ping -c 10 -i 0.2 10.0.2.2 >/dev/null
    ping -c 5 -i 0.2 10.0.2.3 >/dev/null
    # TCP to the host side: qemu's user net answers a closed port with a reset.
    for p in 1 2 3 4 5; do nc -w 1 10.0.2.2 "$p" </dev/null >/dev/null 2>&1; done
    echo "classes-workload: network over a bridge"
else
    echo "classes-workload: no virtio_net or bridge"
fi
if have loop && have ext4 && command -v mkfs.ext4 >/dev/null; then
    dd if=/dev/zero of=/tmp/fs.img bs=1M count=24 2>/dev/null
    mkfs.ext4 -q -F /tmp/fs.img
    mkdir -p /mnt/fs
    mount -t ext4 -o loop /tmp/fs.img /mnt/fs
    for d in 1 2 3 4; do
        mkdir /mnt/fs/d$d
        for f in 1 2 3 4 5 6 7 8; do
            dd if=/dev/urandom of=/mnt/fs/d$d/f$f bs=4k count=8 2>/dev/null
        done
    done
    sync
    cat /mnt/fs/d*/f* >/dev/null
    mv /mnt/fs/d1 /mnt/fs/d5
    rm -r /mnt/fs/d2
    sync
    umount /mnt/fs
    echo "classes-workload: ext4 on loop"
else
    echo "classes-workload: no loop or ext4"
fi
if command -v stress-ng >/dev/null; then
    stress-ng --sock 1 --timer 1 --fork 1 --pipe 1 --aio 1 --procfs 1 --timeout 10s >/dev/null 2>&1
    echo "classes-workload: stress-ng"
fi
echo "classes-workload: done"
