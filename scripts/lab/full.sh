#!/bin/bash
# Lab job: scripts/hw-check.sh, then recording of toy-guest save/restore traces.
#   T=/work/tgt/hw/release
#   /tmp/xenlab/run-lab.sh scripts/lab/full.sh scripts/hw-check.sh $T/xi $T/examples/hwtoy
# Results: /tmp/xenlab/out/hw-check/ (summary.txt, logs, save files) and
# /tmp/xenlab/out/traces/ (<toy>-save.xitrace, <toy>-restore.xitrace, <toy>.xl).
chmod +x ./hw-check.sh ./xi ./hwtoy
STEPS=${STEPS:-1 2 3 4 5} GUEST_MEM=${GUEST_MEM:-96} OUT=/root/out/hw-check ./hw-check.sh ./xi ./hwtoy 2>&1 | tee /root/out/hw-check.log
# The Linux guest save files are ~100 MiB each: keep their record lists, not the files.
for f in /root/out/hw-check/xi-saved.xl /root/out/hw-check/xl-saved.xl /root/out/hw-check/xi-checkpoint.xl; do
  [ -f "$f" ] && { ./xi inspect "$f" > "$f.inspect.txt" 2>&1; rm -f "$f"; }
done
mkdir -p /root/out/traces
for toy in ${RECORD_TOYS:-counter epoch}; do
  printf 'name = "rec-%s"\nmemory = 4\nkernel = "toy:%s"\n' "$toy" "$toy" > /root/out/traces/$toy.cfg
  echo "== hwtoy record $toy"
  ./hwtoy record /root/out/traces/$toy.cfg /root/out/traces 2>&1 | tee /root/out/traces/$toy-record.log
done
ls -l /root/out/traces
