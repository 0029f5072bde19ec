#!/bin/bash
# hw-check.sh — proves xi's hw backend on a real Xen dom0 (issue 7's five acceptance
# steps). Run as root on a dom0 with xl working, with an xi built
# `cargo build --release -p toolstack --features hw`:
#
#     scripts/hw-check.sh [path/to/xi] [path/to/hwtoy]
#
# In the lab (files arrive in the job's working directory):
#     /tmp/xenlab/run-lab.sh scripts/hw-check.sh $T/release/xi $T/release/examples/hwtoy
#
# Prints one "PASS <step>: …" or "FAIL <step>: …" line per check and a summary; exits
# 1 if anything failed. Env: GUEST_CFG (an xl.cfg of a Linux PV guest whose console
# prints "GUEST: tick N", default /etc/xen/xenlab-guest.cfg), GUEST_MEM (MiB, 128),
# OUT (where files and logs go, default /root/out if it exists, else /tmp/hw-check),
# TOYS (toy guests for step 5, default "counter epoch pagetable"), STEPS (which steps
# to run, default "1 2 3 4 5"; "1t" is step 1 with a toy guest instead of Linux, for
# machines too slow to boot the Linux guest).
set -u
XI=${1:-${XI:-./xi}}
HWTOY=${2:-${HWTOY:-./hwtoy}}
GUEST_CFG=${GUEST_CFG:-/etc/xen/xenlab-guest.cfg}
GUEST_MEM=${GUEST_MEM:-128}
TOYS=${TOYS:-counter epoch pagetable}
if [ -z "${OUT:-}" ]; then [ -d /root/out ] && OUT=/root/out/hw-check || OUT=/tmp/hw-check; fi
mkdir -p "$OUT"
XLBIN=$(command -v xl || echo /usr/sbin/xl)
VERIFY_PY=$(ls /usr/lib/xen-4.*/bin/verify-stream-v2 2>/dev/null | head -1)
PYLIB=$(ls -d /usr/lib/xen-4.*/lib/python 2>/dev/null | head -1)
export XI_BACKEND=hw
chmod +x "$XI" "$HWTOY" 2>/dev/null
NPASS=0; NFAIL=0; RESULTS=()
pass() { echo "PASS $1: $2"; RESULTS+=("PASS $1: $2"); NPASS=$((NPASS+1)); }
fail() { echo "FAIL $1: $2"; RESULTS+=("FAIL $1: $2"); NFAIL=$((NFAIL+1)); }
check() { local step=$1 what=$2; shift 2; if "$@"; then pass "$step" "$what"; else fail "$step" "$what"; fi; }
log() { echo "hw-check[$(date +%T)]: $*"; }
run() { log "\$ $*"; "$@"; }

GNAME=hwc
CON=/var/log/xen/console/guest-$GNAME.log
# The highest tick the guest's console log shows (0 if none).
lasttick() { grep -o 'GUEST: tick [0-9]*' "$CON" 2>/dev/null | awk '{print $3}' | sort -n | tail -1 | grep . || echo 0; }
# Waits up to $2 s for a tick above $1.
tick_above() { local n=$1 t=${2:-60} i; for i in $(seq 1 "$t"); do [ "$(lasttick)" -gt "$n" ] && return 0; sleep 1; done; return 1; }
domid_of() { "$XLBIN" domid "$1" 2>/dev/null; }
running() { "$XLBIN" list "$1" >/dev/null 2>&1; }
cleanup_guest() { "$XLBIN" destroy "$GNAME" >/dev/null 2>&1; for i in $(seq 1 10); do running "$GNAME" || return 0; sleep 1; done; }

start_guest() {
  cleanup_guest
  sed -e '/^[[:space:]]*name[[:space:]]*=/d' -e '/^[[:space:]]*memory[[:space:]]*=/d' "$GUEST_CFG" > "$OUT/$GNAME.cfg"
  printf 'name = "%s"\nmemory = %s\n' "$GNAME" "$GUEST_MEM" >> "$OUT/$GNAME.cfg"
  run "$XLBIN" create "$OUT/$GNAME.cfg" || return 1
  tick_above 1 120
}

log "xi: $XI ($("$XI" --version 2>&1 | head -1)); Xen: $("$XLBIN" info 2>/dev/null | awk '/^xen_version/{print $3}')"

# ---- 1. xi --backend hw list matches xl list ------------------------------------
step1() {
  start_guest || { fail 1 "the Linux guest did not start (see $CON)"; return; }
  "$XLBIN" list > "$OUT/xl-list.txt" 2>&1
  "$XI" --backend hw list > "$OUT/xi-list.txt" 2> "$OUT/xi-list.err"
  local rc=$?
  cat "$OUT/xl-list.txt" "$OUT/xi-list.txt" "$OUT/xi-list.err"
  [ $rc = 0 ] || { fail 1 "xi --backend hw list exited $rc: $(head -3 "$OUT/xi-list.err")"; return; }
  # Name ID Mem VCPUs of every domain, sorted by id.
  norm() { awk 'NR>1 && NF>=4 {print $1, $2, $3, $4}' "$1" | sort -k2n; }
  if { norm "$OUT/xl-list.txt" > "$OUT/xl-list.norm"; norm "$OUT/xi-list.txt" > "$OUT/xi-list.norm"; diff "$OUT/xl-list.norm" "$OUT/xi-list.norm" > "$OUT/list.diff"; }; then
    pass 1 "xi list = xl list (names, ids, memory, vCPUs): $(norm "$OUT/xi-list.txt" | tr '\n' ';')"
  else
    fail 1 "xi list differs from xl list: $(tr '\n' ' ' < "$OUT/list.diff")"
  fi
}

# ---- 2. xi save → verify-stream-v2 → xl restore → keeps counting ----------------
step2() {
  running "$GNAME" || start_guest || { fail 2 "the Linux guest did not start"; return; }
  local f="$OUT/xi-saved.xl" before after
  rm -f "$f"
  before=$(lasttick)
  if run "$XI" save "$GNAME" "$f" "$OUT/$GNAME.cfg"; then
    pass 2a "xi save of the Linux guest ($(stat -c %s "$f" 2>/dev/null) bytes, last tick $before)"
  else
    fail 2a "xi save of the Linux guest failed"; return
  fi
  running "$GNAME" && fail 2a "the domain still exists after xi save (expected destroyed)"
  if [ -n "$VERIFY_PY" ] && PYTHONPATH=$PYLIB python3 "$VERIFY_PY" -f xl -i "$f" > "$OUT/verify-xi-saved.txt" 2>&1; then
    pass 2b "verify-stream-v2 -f xl accepts xi's file"
  else
    fail 2b "verify-stream-v2 rejects xi's file: $(tail -3 "$OUT/verify-xi-saved.txt" | tr '\n' ' ')"
  fi
  if run "$XLBIN" restore "$f" > "$OUT/xl-restore.txt" 2>&1; then
    pass 2c "xl restore of xi's file (config from the file)"
  else
    fail 2c "xl restore of xi's file: $(tail -3 "$OUT/xl-restore.txt" | tr '\n' ' ')"
    cleanup_guest
    if run "$XLBIN" restore "$OUT/$GNAME.cfg" "$f" > "$OUT/xl-restore-cfg.txt" 2>&1; then
      log "xl restore with the config given explicitly worked"
    else
      fail 2c "xl restore of xi's file with the config given: $(tail -3 "$OUT/xl-restore-cfg.txt" | tr '\n' ' ')"
      cleanup_guest; return
    fi
  fi
  if tick_above "$before" 60; then
    after=$(lasttick); pass 2d "the guest keeps counting after xl restore (tick $before → $after)"
  else
    fail 2d "no new tick after xl restore (last $(lasttick)); console: $(tail -3 "$CON" | tr '\n' ' ')"
  fi
}

# ---- 3. xl save → xi restore + xi unpause → keeps counting ----------------------
step3() {
  running "$GNAME" || start_guest || { fail 3 "the Linux guest did not start"; return; }
  local f="$OUT/xl-saved.xl" before id
  rm -f "$f"
  before=$(lasttick)
  run "$XLBIN" save "$GNAME" "$f" > "$OUT/xl-save.txt" 2>&1 || { fail 3 "xl save failed: $(tail -2 "$OUT/xl-save.txt")"; return; }
  if id=$("$XI" restore "$f" 2> "$OUT/xi-restore.err" | tail -1) && [ -n "$id" ]; then
    pass 3a "xi restore of xl's file → domain $id"
  else
    fail 3a "xi restore of xl's file: $(tail -3 "$OUT/xi-restore.err" | tr '\n' ' ')"
    if id=$("$XI" restore "$OUT/$GNAME.cfg" "$f" 2> "$OUT/xi-restore-cfg.err" | tail -1) && [ -n "$id" ]; then
      log "xi restore with the config given explicitly worked → domain $id"
    else
      fail 3a "xi restore with the config given: $(tail -3 "$OUT/xi-restore-cfg.err" | tr '\n' ' ')"; return
    fi
  fi
  cat "$OUT/xi-restore.err"
  "$XLBIN" list
  if run "$XI" unpause "$id"; then pass 3b "xi unpause $id"; else fail 3b "xi unpause $id failed"; fi
  if tick_above "$before" 60; then
    pass 3c "the guest keeps counting after xi restore (tick $before → $(lasttick))"
  else
    fail 3c "no new tick after xi restore + unpause (last $(lasttick)); xi console: $("$XI" console "$id" 2>&1 | tail -3 | tr '\n' ' ')"
    "$XLBIN" list; "$XLBIN" dmesg | tail -20
  fi
}

# ---- 4. xi save -c leaves it running; a failed save leaves it running -----------
step4() {
  # A fresh xl-created guest, so this step does not depend on steps 2 and 3.
  start_guest || { fail 4 "the Linux guest did not start"; return; }
  local f="$OUT/xi-checkpoint.xl" before
  rm -f "$f"
  before=$(lasttick)
  if run "$XI" save -c "$GNAME" "$f" "$OUT/$GNAME.cfg" && running "$GNAME" && tick_above "$before" 60; then
    pass 4a "xi save -c: the guest keeps running and counting (tick $before → $(lasttick)); file $(stat -c %s "$f" 2>/dev/null) bytes"
  else
    fail 4a "xi save -c: guest running=$(running "$GNAME" && echo yes || echo no), last tick $(lasttick) (was $before)"
  fi
  if [ -n "$VERIFY_PY" ] && [ -f "$f" ] && PYTHONPATH=$PYLIB python3 "$VERIFY_PY" -f xl -i "$f" > "$OUT/verify-checkpoint.txt" 2>&1; then
    pass 4b "verify-stream-v2 accepts the checkpoint file"
  else
    fail 4b "verify-stream-v2 on the checkpoint: $(tail -2 "$OUT/verify-checkpoint.txt" 2>/dev/null | tr '\n' ' ')"
  fi
  # An unwritable target directory (a read-only mount: root ignores mode bits).
  local ro=/tmp/hw-check-ro
  mkdir -p $ro; mount -t tmpfs -o ro,size=1m tmpfs $ro 2>/dev/null
  before=$(lasttick)
  if run "$XI" save "$GNAME" $ro/x.xl "$OUT/$GNAME.cfg"; then
    fail 4c "xi save into a read-only directory succeeded?"
  elif running "$GNAME" && tick_above "$before" 60; then
    pass 4c "a save into an unwritable directory fails and the guest keeps running (tick $before → $(lasttick))"
  else
    fail 4c "after a failed save (unwritable dir) the guest is not running/counting"
  fi
  umount $ro 2>/dev/null
  # A disk that fills up in the middle of the stream (ENOSPC after the suspend).
  local small=/tmp/hw-check-small
  mkdir -p $small; mount -t tmpfs -o size=4m tmpfs $small 2>/dev/null
  before=$(lasttick)
  if run "$XI" save "$GNAME" $small/x.xl "$OUT/$GNAME.cfg"; then
    fail 4d "xi save onto a 4 MiB filesystem succeeded?"
  elif running "$GNAME" && tick_above "$before" 60 && [ -z "$(ls -A $small)" ]; then
    pass 4d "a save failing mid-stream (disk full) resumes the guest, which keeps counting (tick $before → $(lasttick)), and leaves no file"
  else
    fail 4d "after a save failing mid-stream: running=$(running "$GNAME" && echo yes || echo no) last tick $(lasttick) files: $(ls -A $small | tr '\n' ' ')"
  fi
  umount $small 2>/dev/null
}

# ---- 5. toy guests: xi create, oracle, xi save/restore, oracle -------------------
step5() {
  cleanup_guest
  local toy cfg id id2 f
  for toy in $TOYS; do
    cfg="$OUT/toy-$toy.cfg"
    printf 'name = "toy-%s"\nmemory = 8\nkernel = "toy:%s"\n' "$toy" "$toy" > "$cfg"
    if ! id=$("$XI" create "$cfg" 2> "$OUT/toy-$toy-create.err" | tail -1) || [ -z "$id" ]; then
      fail "5-$toy" "xi create toy:$toy: $(tail -3 "$OUT/toy-$toy-create.err" | tr '\n' ' ')"; continue
    fi
    pass "5-$toy-create" "xi --backend hw create toy:$toy → domain $id"
    sleep 3
    "$XLBIN" list "toy-$toy"
    # The oracle reads many pages: pause the guest so they form one snapshot.
    "$XLBIN" pause "$id"
    "$HWTOY" "$cfg" "$id" > "$OUT/toy-$toy-oracle1.txt" 2>&1; local orc=$?
    "$XLBIN" unpause "$id"
    if [ $orc = 0 ]; then
      pass "5-$toy-oracle" "$(cat "$OUT/toy-$toy-oracle1.txt")"
    else
      fail "5-$toy-oracle" "$(cat "$OUT/toy-$toy-oracle1.txt"); console: $("$XI" console "$id" 2>&1 | tail -3 | tr '\n' ' ')"
    fi
    f="$OUT/toy-$toy.xl"
    if ! run "$XI" save "$id" "$f"; then fail "5-$toy-save" "xi save of toy:$toy"; "$XI" destroy "$id"; continue; fi
    pass "5-$toy-save" "xi save ($(stat -c %s "$f") bytes)"
    if [ -n "$VERIFY_PY" ] && PYTHONPATH=$PYLIB python3 "$VERIFY_PY" -f xl -i "$f" > "$OUT/verify-toy-$toy.txt" 2>&1; then
      pass "5-$toy-verify" "verify-stream-v2 accepts it"
    else
      fail "5-$toy-verify" "verify-stream-v2: $(tail -2 "$OUT/verify-toy-$toy.txt" | tr '\n' ' ')"
    fi
    if ! id2=$("$XI" restore "$f" 2> "$OUT/toy-$toy-restore.err" | tail -1) || [ -z "$id2" ]; then
      fail "5-$toy-restore" "xi restore: $(tail -3 "$OUT/toy-$toy-restore.err" | tr '\n' ' ')"; continue
    fi
    run "$XI" unpause "$id2"
    sleep 3
    "$XLBIN" pause "$id2"
    "$HWTOY" "$cfg" "$id2" > "$OUT/toy-$toy-oracle2.txt" 2>&1; orc=$?
    "$XLBIN" unpause "$id2"
    if [ $orc = 0 ]; then
      pass "5-$toy-restore" "xi restore → domain $id2, unpaused; $(cat "$OUT/toy-$toy-oracle2.txt")"
    else
      fail "5-$toy-restore" "after restore: $(cat "$OUT/toy-$toy-oracle2.txt"); console: $("$XI" console "$id2" 2>&1 | tail -3 | tr '\n' ' ')"
    fi
    "$XI" console "$id2" > "$OUT/toy-$toy-console.txt" 2>&1
    "$XI" destroy "$id2"
  done
}

# Step 1 with a toy guest created by xi instead of the Linux guest.
step1t() {
  printf 'name = "toy-list"\nmemory = 8\nkernel = "toy:counter"\n' > "$OUT/toy-list.cfg"
  local id; id=$("$XI" create "$OUT/toy-list.cfg" 2> "$OUT/toy-list-create.err" | tail -1)
  [ -n "$id" ] || { fail 1 "xi create toy:counter: $(tail -3 "$OUT/toy-list-create.err" | tr '\n' ' ')"; return; }
  "$XLBIN" list > "$OUT/xl-list.txt" 2>&1
  "$XI" --backend hw list > "$OUT/xi-list.txt" 2> "$OUT/xi-list.err"
  local rc=$?
  cat "$OUT/xl-list.txt" "$OUT/xi-list.txt" "$OUT/xi-list.err"
  norm() { awk 'NR>1 && NF>=4 {print $1, $2, $3, $4}' "$1" | sort -k2n; }
  if [ $rc = 0 ] && { norm "$OUT/xl-list.txt" > "$OUT/xl-list.norm"; norm "$OUT/xi-list.txt" > "$OUT/xi-list.norm"; diff "$OUT/xl-list.norm" "$OUT/xi-list.norm" > "$OUT/list.diff"; }; then
    pass 1 "xi list = xl list (names, ids, memory, vCPUs): $(norm "$OUT/xi-list.txt" | tr '\n' ';')"
  else
    fail 1 "xi list (rc $rc) differs from xl list: $(tr '\n' ' ' < "$OUT/list.diff")"
  fi
  "$XI" destroy "$id"
}

for s in ${STEPS:-1 2 3 4 5}; do
  [ "$s" = 5 ] && cleanup_guest
  "step$s"
done
cleanup_guest
echo "================ hw-check summary: $NPASS passed, $NFAIL failed ================"
printf '%s\n' "${RESULTS[@]}" | tee "$OUT/summary.txt"
[ $NFAIL = 0 ]
