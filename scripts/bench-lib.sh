# Shared by scripts/bench-scan and scripts/bench-push (sourced, not run): messages, the cached Debian
# minbase rootfs and its one-layer image, a local Docker Distribution registry on a random port, and
# blob uploads. The sourcing script sets BENCH_NAME (message prefix), WORK (cache directory) and
# SUITE (Debian suite), and TMP before it starts a registry.
# shellcheck shell=bash

die() {
    echo "$BENCH_NAME: $*" >&2
    [ -n "${TMP:-}" ] && [ "${BENCH_KEEP_TMP:-0}" != 1 ] && echo "$BENCH_NAME: (BENCH_KEEP_TMP=1 keeps the scan outputs and registry log)" >&2
    exit 1
}
log() { echo "$BENCH_NAME: $*" >&2; }
now_ns() { date +%s%N; }

# A scratch directory under /dev/shm when available (registry storage, databases, logs).
make_tmp() {
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then TMP=$(mktemp -d /dev/shm/crowsnest-bench.XXXXXX)
    else mkdir -p "$WORK/tmp"; TMP=$(mktemp -d "$WORK/tmp/run.XXXXXX"); fi
}

# ---------------------------------------------------------------------------------------------
# rootfs (cached in $WORK/rootfs): debootstrap --variant=minbase, cleaned up as in
# docs/real-registry.md §3(a); the sourcing script may set DEBOOTSTRAP_INCLUDE (comma-separated
# extra packages)
# ---------------------------------------------------------------------------------------------
mirror() {
    if [ -n "${BENCH_DEBIAN_MIRROR:-}" ]; then echo "$BENCH_DEBIAN_MIRROR"; return; fi
    local m=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        m=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    fi
    if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
        m=$(awk '$1 == "deb" && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
    fi
    echo "${m:-http://deb.debian.org/debian}"
}

ensure_rootfs() { # sets ROOTFS
    ROOTFS=$WORK/rootfs
    if [ ! -f "$WORK/rootfs.ok" ]; then
        [ "$(id -u)" = 0 ] || die "debootstrap needs root (or pre-build $ROOTFS and touch $WORK/rootfs.ok)"
        rm -rf "$ROOTFS" "$WORK/rootfs.tmp" "$WORK/rootfs-double" "$WORK/images"
        log "debootstrap --variant=minbase $SUITE (about a minute)..."
        local t0 R
        t0=$(date +%s)
        debootstrap --variant=minbase ${DEBOOTSTRAP_INCLUDE:+--include="$DEBOOTSTRAP_INCLUDE"} "$SUITE" "$WORK/rootfs.tmp" "$(mirror)" > "$WORK/debootstrap.log" 2>&1 \
            || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed (log: $WORK/debootstrap.log)"; }
        log "debootstrap done in $(( $(date +%s) - t0 )) s"
        R=$WORK/rootfs.tmp
        # device nodes, downloaded .debs, apt caches and lists, and the mirror host out of the image
        rm -rf "${R:?}"/dev/* "$R"/var/cache/apt/archives/*.deb "$R"/var/cache/apt/*.bin "$R"/var/lib/apt/lists/*
        mkdir -p "$R/var/lib/apt/lists/partial"
        echo "deb http://deb.debian.org/debian $SUITE main" > "$R/etc/apt/sources.list"
        mv "$R" "$ROOTFS"
        touch "$WORK/rootfs.ok"
    fi
}

# ---------------------------------------------------------------------------------------------
# one-layer images (cached per image in $WORK/images/<name>: layer.tar.gz, config.json,
# manifest.json, and `digests` = layer digest, layer size, diff_id, uncompressed size, config digest)
# ---------------------------------------------------------------------------------------------
build_image() { # name rootfs-dir marker (rebuilt when the marker is newer than the manifest)
    local name=$1 rootfs=$2 marker=$3 dir=$WORK/images/$1
    if [ -f "$dir/manifest.json" ] && [ ! "$marker" -nt "$dir/manifest.json" ]; then
        return
    fi
    log "building image $name (tar | gzip -6)..."
    rm -rf "$dir"; mkdir -p "$dir"
    tar --sort=name --numeric-owner -C "$rootfs" -cf - . | gzip -6 -n > "$dir/layer.tar.gz.tmp"
    mv "$dir/layer.tar.gz.tmp" "$dir/layer.tar.gz"
    local ldig lsize diff usize cdig csize
    ldig=$(sha256sum "$dir/layer.tar.gz" | cut -d' ' -f1)
    lsize=$(stat -c %s "$dir/layer.tar.gz")
    diff=$(gzip -dc "$dir/layer.tar.gz" | sha256sum | cut -d' ' -f1)    # diff_id: sha256 of the tar
    usize=$(gzip -dc "$dir/layer.tar.gz" | wc -c)
    printf '{"created":"2024-01-01T00:00:00Z","architecture":"amd64","os":"linux","config":{"Cmd":["/bin/bash"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"2024-01-01T00:00:00Z","created_by":"scripts/bench-scan: debootstrap --variant=minbase %s (%s)"}]}' \
        "$diff" "$SUITE" "$name" > "$dir/config.json"
    cdig=$(sha256sum "$dir/config.json" | cut -d' ' -f1)
    csize=$(stat -c %s "$dir/config.json")
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d}]}' \
        "$cdig" "$csize" "$ldig" "$lsize" > "$dir/manifest.json.tmp"
    echo "$ldig $lsize $diff $usize $cdig" > "$dir/digests"
    mv "$dir/manifest.json.tmp" "$dir/manifest.json"
}

# ---------------------------------------------------------------------------------------------
# registry: `docker-registry serve CONFIG` (its http.addr 127.0.0.1:0); sets REG_PID, PORT and
# REG (http://127.0.0.1:PORT), log in $TMP/registry.log. The caller's EXIT trap stops REG_PID.
# ---------------------------------------------------------------------------------------------
start_registry() { # config
    docker-registry serve "$1" > "$TMP/registry.log" 2>&1 &
    REG_PID=$!
    PORT=""
    for _ in $(seq 1 200); do
        PORT=$(grep -o 'listening on 127\.0\.0\.1:[0-9]*' "$TMP/registry.log" | head -1 | sed 's/.*://' || true)
        [ -n "$PORT" ] && break
        kill -0 "$REG_PID" 2>/dev/null || { cat "$TMP/registry.log" >&2; die "registry exited"; }
        sleep 0.05
    done
    [ -n "$PORT" ] || { cat "$TMP/registry.log" >&2; die "registry did not report its port"; }
    REG=http://127.0.0.1:$PORT
    for _ in $(seq 1 100); do curl -fs "$REG/v2/" >/dev/null && break; sleep 0.05; done
    curl -fs "$REG/v2/" >/dev/null || die "registry at $REG does not answer /v2/"
}

push_blob() { # repo file digest
    local repo=$1 file=$2 digest=$3 loc code
    loc=$(curl -fsS -X POST -o /dev/null -D - "$REG/v2/$repo/blobs/uploads/" \
        | awk 'tolower($1) == "location:" {sub(/\r$/, "", $2); print $2}')
    [ -n "$loc" ] || die "no upload Location for $repo"
    case $loc in http*) ;; *) loc=$REG$loc ;; esac
    case $loc in *\?*) loc="$loc&digest=$digest" ;; *) loc="$loc?digest=$digest" ;; esac
    code=$(curl -sS -o "$TMP/put.out" -w '%{http_code}' -X PUT -H 'Content-Type: application/octet-stream' \
        --data-binary "@$file" "$loc")
    [ "$code" = 201 ] || { cat "$TMP/put.out" >&2; die "blob PUT $digest to $repo: HTTP $code"; }
}
