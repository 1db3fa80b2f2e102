#!/usr/bin/env bash
# A throwaway single-node Ceph RGW (S3) on 127.0.0.1 for the tests and the benchmark.
#
#   scripts/rgw.sh start   # install Debian's ceph if missing, start mon + OSD + RGW, create the bucket
#   scripts/rgw.sh env     # print the DISKSNAP_TEST_S3_* exports (eval "$(scripts/rgw.sh env)")
#   scripts/rgw.sh stop    # stop the daemons by their PIDs and remove the cluster's directory
#   scripts/rgw.sh status  # exit 0 when the RGW answers
#
# One monitor, one OSD and one radosgw, all as the calling user, under $DISKSNAP_RGW_DIR
# (default /tmp/disksnap-rgw). Auth is off (cephx none, crc on the wire: the secure mode needs
# keys), pools have one replica, and every start is a fresh, empty cluster; `stop` removes it.
# The OSD keeps its objects in RAM (memstore) for the tests, or in a sparse file under the
# cluster's directory (bluestore, a real OSD's store) for the benchmark: on this VM memstore's
# fresh pages cost the OSD a host fault each (85 % of its CPU in clear_page), which charged the
# RGW's side of an S3 benchmark for RAM, not for storing. The S3 user's keys are fixed test keys.
#
# Knobs (environment):
#   DISKSNAP_RGW_DIR        where the cluster lives             (/tmp/disksnap-rgw)
#   DISKSNAP_RGW_PORT       the S3 endpoint's port              (17480: not 7480, RGW's usual
#                           port, which is disksnap's own default listen address)
#   DISKSNAP_RGW_MON_PORT   the monitor's msgr2 port            (46789; msgr1 is this + 1)
#   DISKSNAP_RGW_STORE      the OSD's object store: memstore (RAM) or bluestore (a sparse
#                           file in DISKSNAP_RGW_DIR)            (memstore)
#   DISKSNAP_RGW_MEM_MIB    the store's size: the most RAM memstore may fill, or bluestore's
#                           file size (6144; only what is stored takes RAM or disk)
#   DISKSNAP_RGW_BUCKET     the bucket created at start         (disksnap-test)
#
# `start` is idempotent: an RGW already answering from this directory is left as it is; a
# half-started or dead one is stopped and started afresh.
set -euo pipefail

DIR=${DISKSNAP_RGW_DIR:-/tmp/disksnap-rgw}
PORT=${DISKSNAP_RGW_PORT:-17480}
MON_PORT=${DISKSNAP_RGW_MON_PORT:-46789}
MEM_MIB=${DISKSNAP_RGW_MEM_MIB:-6144}
BUCKET=${DISKSNAP_RGW_BUCKET:-disksnap-test}
STORE=${DISKSNAP_RGW_STORE:-memstore}
case "$STORE" in memstore | bluestore) ;; *) echo "rgw.sh: DISKSNAP_RGW_STORE must be memstore or bluestore, not '$STORE'" >&2; exit 2 ;; esac
# Debian's daemons use glibc's malloc, which maps each multi-MiB message buffer afresh and
# unmaps it when freed: on this VM every fresh page is a host fault (16 % of radosgw's CPU in
# clear_page in a full snapshot). Buffers up to 32 MiB come from the heap and it keeps up to
# 1 GiB free, so they are reused.
export MALLOC_MMAP_THRESHOLD_=${MALLOC_MMAP_THRESHOLD_:-33554432}
export MALLOC_TRIM_THRESHOLD_=${MALLOC_TRIM_THRESHOLD_:-1073741824}
# Fixed test credentials: this RGW listens on loopback only and holds nothing but test data.
ACCESS_KEY=DISKSNAPTESTACCESS01
SECRET_KEY=disksnap-test-secret-key-0123456789abcdef
ENDPOINT="http://127.0.0.1:$PORT"
CONF="$DIR/ceph.conf"

log() { echo "rgw.sh: $*" >&2; }
die() { log "$*"; exit 1; }

install_ceph() {
    local need=()
    command -v ceph-mon >/dev/null || need+=(ceph-mon)
    command -v ceph-osd >/dev/null || need+=(ceph-osd)
    command -v radosgw >/dev/null || need+=(radosgw)
    command -v radosgw-admin >/dev/null || need+=(ceph-common)
    command -v ceph >/dev/null || need+=(ceph-common)
    command -v monmaptool >/dev/null || need+=(ceph-base)
    command -v curl >/dev/null || need+=(curl)
    [ ${#need[@]} -eq 0 ] && return 0
    mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
    log "installing: ${need[*]}"
    local sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    # --no-install-recommends: the daemons are enough; recommends pull in the dashboard's Python stack.
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

# PIDs of this cluster's daemons, from the pid files the daemons write themselves.
pids() {
    local f
    for f in "$DIR"/run/*.pid; do
        [ -f "$f" ] || continue
        local p
        p=$(cat "$f" 2>/dev/null || true)
        [ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo "$p"
    done
    return 0
}

answering() {
    curl -s -o /dev/null --max-time 2 "$ENDPOINT/" 2>/dev/null
}

# S3 request without a body, signed with the test keys (curl's own SigV4: no SDK needed to
# create a bucket). RGW rejects the signature unless x-amz-content-sha256 is sent, and curl 7.88
# does not add it itself: it is the SHA-256 of the empty body.
s3() {
    local method=$1 path=$2
    curl -s -o "$DIR/s3-response" -w '%{http_code}' --max-time 20 -X "$method" \
        -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
        --aws-sigv4 "aws:amz:us-east-1:s3" --user "$ACCESS_KEY:$SECRET_KEY" "$ENDPOINT$path"
}

stop() {
    local ps=() p i
    # radosgw first, then the OSD, then the monitor: each still has what it talks to while it stops.
    for name in client.rgw osd mon; do
        for f in "$DIR"/run/"$name"*.pid; do
            [ -f "$f" ] || continue
            p=$(cat "$f" 2>/dev/null || true)
            if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
                kill "$p" 2>/dev/null || true
                ps+=("$p")
            fi
        done
    done
    for p in "${ps[@]+"${ps[@]}"}"; do
        for i in $(seq 1 50); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.2
        done
        kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null || true
    done
    # Only a directory this script made: it holds its ceph.conf with our marker.
    if [ -d "$DIR" ]; then
        if [ -f "$CONF" ] && grep -q '^# disksnap-rgw' "$CONF"; then
            rm -rf "$DIR"
        elif [ -n "$(ls -A "$DIR" 2>/dev/null)" ]; then
            die "$DIR exists and was not made by rgw.sh; not removing it"
        fi
    fi
}

wait_for() {
    local what=$1 tries=$2
    shift 2
    for _ in $(seq 1 "$tries"); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.5
    done
    log "timed out waiting for $what; last lines of the logs:"
    tail -n 20 "$DIR"/log/*.log >&2 2>/dev/null || true
    return 1
}

# The OSD's object store lines of ceph.conf.
store_conf() {
    local bytes=$((MEM_MIB * 1024 * 1024))
    if [ "$STORE" = memstore ]; then
        printf 'osd objectstore = memstore\nmemstore device bytes = %s\n' "$bytes"
    else
        # A sparse file made at mkfs (osd data/block); the OSD's caches are held to 1 GiB (the
        # default target is 4 GiB) so the machine's page cache is not crowded out.
        printf 'osd objectstore = bluestore\nbluestore block create = true\nbluestore block size = %s\nosd memory target = 1073741824\n' "$bytes"
    fi
}

start() {
    if [ -f "$CONF" ] && answering && [ -n "$(pids)" ] && [ "$(s3 HEAD "/$BUCKET" || true)" = 200 ]; then
        log "already running at $ENDPOINT ($DIR)"
        return 0
    fi
    install_ceph
    stop
    local t0 fsid osd_uuid
    t0=$(date +%s.%N)
    mkdir -p "$DIR"/{run,log,mon/a,osd/0,rgw}
    fsid=$(cat /proc/sys/kernel/random/uuid)
    osd_uuid=$(cat /proc/sys/kernel/random/uuid)
    cat >"$CONF" <<EOF
# disksnap-rgw: written by scripts/rgw.sh; removed by 'rgw.sh stop'
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$((MON_PORT + 1))]
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = false
# With auth off, msgr2's secure mode has no keys to use: crc everywhere.
ms mon client mode = crc
ms client mode = crc
ms mon service mode = crc
ms mon cluster mode = crc
ms service mode = crc
ms cluster mode = crc
run dir = $DIR/run
pid file = $DIR/run/\$name.pid
admin socket = $DIR/run/\$name.asok
log file = $DIR/log/\$name.log
crash dir = $DIR/crash
log to stderr = false
err to stderr = false
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon allow pool delete = true
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
mon warn on pool no redundancy = false
# A test cluster on a busy disk must not refuse writes at the monitor's 5 % free-space stop.
mon data avail warn = 2
mon data avail crit = 1
$(store_conf)
osd data = $DIR/osd/\$id
mon data = $DIR/mon/\$id
osd max object name len = 460
osd max object namespace len = 64

[client.rgw.0]
# tcp_nodelay: without it beast sends a response body after its headers only once the client
# ACKs them, and the client delays that ACK 40 ms on a kept-alive connection (every GET or LIST
# took ~40 ms, PUTs 2 ms).
rgw frontends = beast endpoint=127.0.0.1:$PORT tcp_nodelay=1
rgw data = $DIR/rgw
rgw enable usage log = false
# Deleted objects' data goes to RGW's garbage collector, which by default waits 2 h: in RAM that
# fills the memstore (then the OSD stops writes and requests hang). Collect within seconds.
rgw gc obj min wait = 0
rgw gc processor period = 5
rgw gc processor max time = 5
rgw thread pool size = 64
EOF
    monmaptool --create --clobber --fsid "$fsid" \
        --addv a "[v2:127.0.0.1:$MON_PORT,v1:127.0.0.1:$((MON_PORT + 1))]" "$DIR/monmap" >/dev/null
    ceph-mon -c "$CONF" --mkfs -i a --monmap "$DIR/monmap" 2>>"$DIR/log/setup.log"
    ceph-mon -c "$CONF" -i a
    wait_for "the monitor" 60 timeout 5 ceph -c "$CONF" mon stat
    ceph -c "$CONF" osd new "$osd_uuid" 0 >/dev/null
    ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$osd_uuid" 2>>"$DIR/log/setup.log" ||
        die "ceph-osd --mkfs ($STORE) failed; last lines of $DIR/log/osd.0.log:
$(tail -n 5 "$DIR/log/osd.0.log" 2>/dev/null)"
    ceph-osd -c "$CONF" -i 0
    wait_for "the OSD" 120 bash -c "timeout 5 ceph -c '$CONF' osd stat | grep -q '1 up'"
    radosgw -c "$CONF" -n client.rgw.0
    wait_for "radosgw on $ENDPOINT" 240 answering
    radosgw-admin -c "$CONF" user create --uid=disksnap --display-name="disksnap tests" \
        --access-key="$ACCESS_KEY" --secret-key="$SECRET_KEY" >/dev/null 2>>"$DIR/log/setup.log"
    local code=""
    for _ in $(seq 1 40); do
        code=$(s3 PUT "/$BUCKET" || true)
        [ "$code" = 200 ] && break
        sleep 0.5
    done
    [ "$code" = 200 ] || die "creating bucket $BUCKET failed (HTTP $code): $(cat "$DIR/s3-response" 2>/dev/null)"
    log "RGW up at $ENDPOINT, bucket $BUCKET, in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b - a}') s ($DIR)"
}

env_exports() {
    cat <<EOF
export DISKSNAP_TEST_S3_ENDPOINT=$ENDPOINT
export DISKSNAP_TEST_S3_BUCKET=$BUCKET
export DISKSNAP_TEST_S3_ACCESS_KEY=$ACCESS_KEY
export DISKSNAP_TEST_S3_SECRET_KEY=$SECRET_KEY
EOF
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env) env_exports ;;
    status) [ -f "$CONF" ] && answering && [ -n "$(pids)" ] && [ "$(s3 HEAD "/$BUCKET" || true)" = 200 ] || exit 1 ;;
    *) die "usage: $0 start|stop|env|status" ;;
esac
