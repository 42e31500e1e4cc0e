# lab/common.sh: shared helpers of the kernel lab scripts (sourced, not run).
# One cache dir holds everything the lab downloads, unpacks, builds and captures, so a second run
# on the same machine is fast and a fresh machine only needs time.
LAB=${KLP_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/klp-build-lab}
mkdir -p "$LAB"

log() { echo "lab: $*" >&2; }
die() { echo "lab: error: $*" >&2; exit 1; }

LAB_PACKAGES="qemu-system-x86 busybox-static cpio flex bison bc libssl-dev libelf-dev dwarves patchutils gawk kmod xz-utils make gcc"

# Install the system packages the lab needs (root on Debian 12), once per machine.
lab_need_packages() {
    local missing=()
    for p in $LAB_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -q >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
    fi
    if ! apt-cache policy linux-image-amd64 | grep -q 'Candidate: [0-9]'; then
        apt-get update -q >&2
    fi
}

# The version of Debian's current 6.1 kernel packages; it moves with security updates, so it is
# read from apt, never hard-coded. KLP_LAB_DEBIAN_VERSION pins it for a reproducer.
lab_debian_version() {
    if [ -n "${KLP_LAB_DEBIAN_VERSION:-}" ]; then echo "$KLP_LAB_DEBIAN_VERSION"; return; fi
    apt-cache policy linux-image-amd64 | awk '/Candidate:/ {print $2}'
}

# The ABI name (6.1.0-56) of the image that linux-image-amd64 depends on.
lab_debian_abi() {
    apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: linux-image-\(.*\)-amd64$/\1/p' | head -1
}
