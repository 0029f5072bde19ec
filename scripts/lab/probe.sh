#!/bin/bash
# Lab job: runs hwprobe (hypervisor/examples/hwprobe.rs) and `xi --backend hw list` on
# the lab's dom0, with and without a running Linux guest.
#   /tmp/xenlab/run-lab.sh scripts/lab/probe.sh $T/release/examples/hwprobe $T/release/xi
OUT=/root/out
m() { echo "XENLAB[$(cut -d' ' -f1 /proc/uptime)]: $*"; }
chmod +x ./hwprobe ./xi 2>/dev/null
waitguest() { for i in $(seq 1 120); do grep -q "GUEST: tick $2" /var/log/xen/console/guest-$1.log 2>/dev/null && return 0; sleep 1; done; return 1; }
m "probe without a guest"
./hwprobe 2>&1 | tee $OUT/probe-noguest.txt
m "create g"
xl create /etc/xen/xenlab-guest.cfg 'name="g"' 'memory=128'
waitguest g 2 || { m "guest did not tick"; tail /var/log/xen/console/guest-g.log; }
ID=$(xl domid g)
m "xl list"; xl list | tee $OUT/xl-list.txt
m "xi --backend hw list"; [ -x ./xi ] && ./xi --backend hw list 2>&1 | tee $OUT/xi-list.txt
m "probe with guest $ID"
./hwprobe $ID 2>&1 | tee $OUT/probe-guest.txt
N=$(grep -c "GUEST: tick" /var/log/xen/console/guest-g.log)
sleep 5
N2=$(grep -c "GUEST: tick" /var/log/xen/console/guest-g.log)
m "guest ticks before/after probe: $N $N2"
xl destroy g
m "probe job done"
