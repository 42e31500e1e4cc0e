# shellcheck shell=bash
# lab/common.sh: shared helpers of the kernel lab scripts (sourced, not run).
# One cache dir holds everything the lab downloads, unpacks, builds and captures, so a second run
# on the same machine is fast and a fresh machine only needs time.
LAB=${KLP_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/klp-build-lab}
mkdir -p "$LAB"
# (The LAB_* variables are for the scripts that source this file.)
# shellcheck disable=SC2034
LAB_SCRIPTS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Debian 12 ships two kernel series, 6.1 (the default, `linux-image-amd64`) and 6.12
# (`linux-image-6.12-amd64`); the lab handles each by the same code. The series names the source
# package (linux-source-6.1) and the metapackage whose dependency names the current ABI.
LAB_SERIES_DEFAULT=6.1

# Select the series $1 (empty: the default) for the rest of the calling script: sets LAB_SERIES,
# LAB_META (the metapackage apt reads the version from) and LAB_ENV_FILE (what setup.sh last
# produced for this series, as KEY=VALUE lines; env.sh reads only this file). Each series has its
# own env file; its version dirs ($LAB/debian-<version>) differ by version anyway.
lab_series() {
    LAB_SERIES=${1:-$LAB_SERIES_DEFAULT}
    case $LAB_SERIES in
        6.1) LAB_META=linux-image-amd64 ;;
        [0-9]*.[0-9]*) LAB_META=linux-image-$LAB_SERIES-amd64 ;;
        *) die "unknown kernel series '$LAB_SERIES': give a Debian 12 series such as 6.1 or 6.12" ;;
    esac
    # (The default series keeps lab.env, the name every cache made before 6.12 has.)
    if [ "$LAB_SERIES" = "$LAB_SERIES_DEFAULT" ]; then
        LAB_ENV_FILE="$LAB/lab.env"
    else
        LAB_ENV_FILE="$LAB/lab-$LAB_SERIES.env"
    fi
}

log() { echo "lab: $*" >&2; }
die() { echo "lab: error: $*" >&2; exit 1; }

LAB_PACKAGES="qemu-system-x86 busybox-static cpio flex bison bc libssl-dev libelf-dev dwarves patchutils gawk kmod xz-utils make gcc binutils util-linux coreutils"

# Take the lock `$LAB/.<name>.lock` for the rest of the calling script. Each script has its own
# lock name: flock locks belong to an open file, so a nested script that reopened its caller's
# lock file would wait for its caller forever.
lab_lock() {
    local fd
    exec {fd}>"$LAB/.$1.lock"
    if ! flock -n "$fd"; then
        log "waiting for another lab $1 to finish ($LAB/.$1.lock)"
        flock "$fd"
    fi
}

# Install the given Debian packages that are missing (root on Debian 12); apt-get update first,
# since a fresh machine's package lists may be empty or stale.
lab_install() {
    local missing=()
    for p in "$@"; do
        case $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) in
            *" ok installed") ;;
            *) missing+=("$p") ;;
        esac
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    [ "$(id -u)" = 0 ] || die "missing packages ${missing[*]}; install them as root (apt-get install ${missing[*]})"
    log "installing ${missing[*]}"
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}

# Install the system packages the lab needs, once per machine, and make sure apt knows the kernel
# packages (their versions are read from apt below).
lab_need_packages() {
    # shellcheck disable=SC2086
    lab_install $LAB_PACKAGES
    # (Read into a variable first: `grep -q` stops reading early, and under pipefail the
    # writer's SIGPIPE would count as a failure.)
    local policy
    policy=$(apt-cache policy "$LAB_META")
    if ! grep -q 'Candidate: [0-9]' <<<"$policy"; then
        apt-get update -q >&2
    fi
}

# The version of Debian's current kernel packages of the selected series; it moves with security
# updates, so it is read from apt, never hard-coded. KLP_LAB_DEBIAN_VERSION pins it for a
# reproducer (for the series being set up).
lab_debian_version() {
    if [ -n "${KLP_LAB_DEBIAN_VERSION:-}" ]; then echo "$KLP_LAB_DEBIAN_VERSION"; return; fi
    apt-cache policy "$LAB_META" | awk '/Candidate:/ {print $2}'
}

# The ABI name (6.1.0-56, 6.12.117+deb12) of the image that the series' metapackage at version
# $1 depends on.
lab_debian_abi() {
    apt-cache show "$LAB_META=$1" | sed -n 's/^Depends: linux-image-\([^ ,]*\)-amd64 .*/\1/p' | head -1
}

# The kernel image of the version dir $1 (fetch.sh's output): its one boot/vmlinuz-<release>.
lab_vmlinuz() {
    local images=("$1"/image/boot/vmlinuz-*)
    [ -f "${images[0]}" ] || die "no boot/vmlinuz-* in $1/image; remove $1/.fetched and rerun lab/setup.sh"
    echo "${images[0]}"
}
