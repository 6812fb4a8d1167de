#!/bin/sh
# k3rs installer: installs the k3rs binary, a systemd (or openrc) service, an env file,
# and the k3rs-killall.sh / k3rs-uninstall.sh scripts. Safe to rerun: files are only
# rewritten when their content changes, and a running service is restarted only when
# its binary, unit or env file changed.
#
# Usage (from a k3rs checkout, after `cargo build --release`):
#   sudo ./install.sh [server|agent] [k3rs flags...]
#   K3RS_URL=https://server:6443 K3RS_TOKEN=... sudo -E ./install.sh        # an agent
#
# Environment:
#   INSTALL_K3RS_BIN           path of the k3rs binary to install (default in a checkout:
#                              target/release/k3rs; no release downloads exist yet)
#   INSTALL_K3RS_BIN_SHA256    expected sha256 of that binary (verified when given)
#   INSTALL_K3RS_SKIP_DOWNLOAD=true  keep the binary already in INSTALL_K3RS_BIN_DIR
#   INSTALL_K3RS_EXEC          command and flags for the service (e.g. "server --tls-san x")
#   INSTALL_K3RS_NAME          service name suffix: k3rs-<name>
#   INSTALL_K3RS_BIN_DIR       where binary and scripts go (default /usr/local/bin)
#   INSTALL_K3RS_SYSTEMD_DIR   where the unit and env file go (default /etc/systemd/system)
#   INSTALL_K3RS_DATA_DIR      data dir removed by uninstall (default /var/lib/k3rs)
#   INSTALL_K3RS_CONFIG_DIR    config dir removed by uninstall (default /etc/k3rs)
#   INSTALL_K3RS_SKIP_ENABLE=true   do not enable the service
#   INSTALL_K3RS_SKIP_START=true    do not start/restart the service
#   INSTALL_K3RS_SKIP_DEPS=true     do not install containerd, runc and CNI plugins
#   INSTALL_K3RS_SYMLINK=skip|force kubectl symlink (default: only if no kubectl on PATH)
#   K3RS_*                     written to the service's env file (K3RS_URL + K3RS_TOKEN
#                              make an agent)
set -e
set -o noglob

info() { echo "[INFO]  $*"; }
warn() { echo "[WARN]  $*" >&2; }
fatal() {
    echo "[ERROR] $*" >&2
    exit 1
}

# --- where the script runs from (a checkout has Cargo.toml and systemd/ next to it) ---
script_dir() {
    case "$0" in
        */*) (cd "$(dirname "$0")" 2>/dev/null && pwd) || true ;;
        *) if [ -f "./$0" ]; then pwd; fi ;;
    esac
}

# --- settings ---
setup_env() {
    SCRIPT_DIR=$(script_dir)
    if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi

    # The command: first word of INSTALL_K3RS_EXEC/arguments, else agent when K3RS_URL.
    # shellcheck disable=SC2086 # INSTALL_K3RS_EXEC is a word list on purpose
    set -- ${INSTALL_K3RS_EXEC} "$@"
    case "$1" in
        server | agent)
            CMD_K3RS=$1
            shift
            ;;
        -* | "")
            if [ -n "${K3RS_URL}" ]; then CMD_K3RS=agent; else CMD_K3RS=server; fi
            ;;
        *) fatal "unknown command '$1': use server or agent" ;;
    esac
    if [ "${CMD_K3RS}" = agent ]; then
        [ -n "${K3RS_URL}" ] || fatal "an agent needs K3RS_URL (https://<server>:6443)"
        [ -n "${K3RS_TOKEN}" ] || [ -n "${K3RS_TOKEN_FILE}" ] ||
            fatal "an agent needs K3RS_TOKEN (or K3RS_TOKEN_FILE)"
        case "${K3RS_URL}" in https://*) ;; *) fatal "K3RS_URL must start with https://" ;; esac
    fi
    EXEC_ARGS=$(render_args "$@")

    if [ -n "${INSTALL_K3RS_NAME}" ]; then
        SYSTEM_NAME=k3rs-${INSTALL_K3RS_NAME#k3rs-}
    elif [ "${CMD_K3RS}" = server ]; then
        SYSTEM_NAME=k3rs
    else
        SYSTEM_NAME=k3rs-agent
    fi
    case "${SYSTEM_NAME}" in
        *[!a-zA-Z0-9_.-]*) fatal "invalid service name ${SYSTEM_NAME}" ;;
    esac

    BIN_DIR=${INSTALL_K3RS_BIN_DIR:-/usr/local/bin}
    SYSTEMD_DIR=${INSTALL_K3RS_SYSTEMD_DIR:-/etc/systemd/system}
    DATA_DIR=${INSTALL_K3RS_DATA_DIR:-/var/lib/k3rs}
    CONFIG_DIR=${INSTALL_K3RS_CONFIG_DIR:-/etc/k3rs}
    for d in "${DATA_DIR}" "${CONFIG_DIR}" "${BIN_DIR}" "${SYSTEMD_DIR}"; do
        case "$d" in
            /*/ | /) fatal "directories must not be / or end in /, got '$d'" ;;
            /?*) ;;
            *) fatal "directories must be absolute paths, got '$d'" ;;
        esac
        case "$d" in *[\'\"\ ]*) fatal "directory names must not contain quotes or spaces, got '$d'" ;; esac
    done

    BIN=${BIN_DIR}/k3rs
    SERVICE_K3RS=${SYSTEM_NAME}.service
    UNINSTALL_K3RS_SH=${BIN_DIR}/${SYSTEM_NAME}-uninstall.sh
    KILLALL_K3RS_SH=${BIN_DIR}/k3rs-killall.sh
}

# Each argument double-quoted for systemd (which also expands % and $).
render_args() {
    out=
    for arg in "$@"; do
        q=$(printf '%s' "${arg}" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/%/%%/g' -e 's/\$/$$/g')
        out="${out} \"${q}\""
    done
    printf '%s' "${out}"
}

# --- init system ---
verify_system() {
    HAS_SYSTEMD=false
    HAS_OPENRC=false
    if [ -x /sbin/openrc-run ]; then
        HAS_OPENRC=true
    elif command -v systemctl >/dev/null 2>&1; then
        HAS_SYSTEMD=true
    fi
    if [ "${HAS_SYSTEMD}" = true ]; then
        FILE_K3RS_SERVICE=${SYSTEMD_DIR}/${SERVICE_K3RS}
        FILE_K3RS_ENV=${SYSTEMD_DIR}/${SERVICE_K3RS}.env
    elif [ "${HAS_OPENRC}" = true ]; then
        FILE_K3RS_SERVICE=/etc/init.d/${SYSTEM_NAME}
        FILE_K3RS_ENV=${CONFIG_DIR}/${SYSTEM_NAME}.env
    else
        FILE_K3RS_SERVICE=
        FILE_K3RS_ENV=
    fi
}

# --- files: written only when the content differs, so reruns change nothing ---
# install_file <source file> <dest> <mode>
install_file() {
    if [ -f "$2" ] && cmp -s "$1" "$2"; then
        rm -f "$1"
        $SUDO chmod "$3" "$2"
        return 1
    fi
    $SUDO mkdir -p "$(dirname "$2")"
    $SUDO chmod "$3" "$1"
    $SUDO mv -f "$1" "$2"
    return 0
}

new_tmp() {
    # Temp files live next to their destination so the final mv is atomic.
    $SUDO mkdir -p "$1"
    (umask 077 && mktemp "$1/.k3rs-install.XXXXXX")
}

sha256() {
    sha256sum "$1" | awk '{print $1}'
}

# Hashes of what a running service depends on, to decide whether to restart it.
installed_hashes() {
    for f in "${BIN}" "${FILE_K3RS_SERVICE}" "${FILE_K3RS_ENV}"; do
        if [ -n "$f" ] && [ -f "$f" ]; then sha256 "$f"; else echo none; fi
    done
}

# --- dependencies ---
has_cni() {
    for d in /usr/lib/cni /opt/cni/bin /usr/libexec/cni; do
        [ -x "$d/bridge" ] && [ -x "$d/host-local" ] && return 0
    done
    return 1
}

install_deps() {
    if [ "${INSTALL_K3RS_SKIP_DEPS}" = true ]; then
        info "Skipping containerd/runc/CNI plugin installation (INSTALL_K3RS_SKIP_DEPS)"
        return
    fi
    need=false
    command -v containerd >/dev/null 2>&1 || need=true
    command -v runc >/dev/null 2>&1 || need=true
    has_cni || need=true
    if [ "${need}" = false ]; then
        info "containerd, runc and CNI plugins already installed"
        return
    fi
    info "Installing containerd, runc and CNI plugins"
    if command -v apt-get >/dev/null 2>&1; then
        $SUDO apt-get update -qq
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            containerd runc containernetworking-plugins
    elif command -v dnf >/dev/null 2>&1; then
        $SUDO dnf install -y containerd runc containernetworking-plugins
    elif command -v zypper >/dev/null 2>&1; then
        $SUDO zypper --non-interactive install containerd runc cni-plugins
    elif command -v apk >/dev/null 2>&1; then
        $SUDO apk add --no-cache containerd runc cni-plugins
    else
        fatal "no apt-get, dnf, zypper or apk: install containerd, runc and the CNI plugins yourself, or set INSTALL_K3RS_SKIP_DEPS=true"
    fi
}

# --- binary ---
setup_binary() {
    if [ "${INSTALL_K3RS_SKIP_DOWNLOAD}" = true ]; then
        [ -x "${BIN}" ] || fatal "INSTALL_K3RS_SKIP_DOWNLOAD=true but ${BIN} does not exist"
        info "Skipping binary installation, using ${BIN}"
        return
    fi
    if [ -n "${INSTALL_K3RS_BIN}" ]; then
        src=${INSTALL_K3RS_BIN}
    elif [ -n "${SCRIPT_DIR}" ] && [ -f "${SCRIPT_DIR}/Cargo.toml" ] &&
        grep -q '^name = "k3rs"' "${SCRIPT_DIR}/Cargo.toml"; then
        src=${SCRIPT_DIR}/target/release/k3rs
        [ -f "${src}" ] || fatal "no release build at ${src}: run 'cargo build --release' first, or set INSTALL_K3RS_BIN=/path/to/k3rs"
    else
        fatal "k3rs has no release downloads yet: run this script from a k3rs checkout after 'cargo build --release', or set INSTALL_K3RS_BIN=/path/to/k3rs"
    fi
    [ -f "${src}" ] || fatal "binary ${src} does not exist"
    if [ -n "${INSTALL_K3RS_BIN_SHA256}" ]; then
        got=$(sha256 "${src}")
        [ "${got}" = "${INSTALL_K3RS_BIN_SHA256}" ] ||
            fatal "sha256 of ${src} is ${got}, expected ${INSTALL_K3RS_BIN_SHA256}"
        info "Verified sha256 of ${src}"
    fi
    if [ -f "${BIN}" ] && [ "$(sha256 "${BIN}")" = "$(sha256 "${src}")" ]; then
        info "${BIN} is up to date"
        return
    fi
    info "Installing k3rs to ${BIN}"
    tmp=$(new_tmp "${BIN_DIR}")
    $SUDO cp "${src}" "${tmp}"
    $SUDO chmod 755 "${tmp}"
    $SUDO mv -f "${tmp}" "${BIN}"
}

# kubectl -> k3rs (k3rs runs the system kubectl; the link helps when kubectl lives
# somewhere off PATH). Only made when no kubectl exists, like k3s does.
create_symlinks() {
    [ "${INSTALL_K3RS_SYMLINK}" = skip ] && return
    link=${BIN_DIR}/kubectl
    existing=$(command -v kubectl 2>/dev/null || true)
    if [ -e "${link}" ] || [ -L "${link}" ]; then
        info "Skipping ${link} symlink to k3rs, ${link} already exists"
    elif [ -n "${existing}" ] && [ "${INSTALL_K3RS_SYMLINK}" != force ]; then
        info "Skipping ${link} symlink to k3rs, command exists in PATH at ${existing}"
    else
        info "Creating ${link} symlink to k3rs"
        $SUDO ln -s k3rs "${link}"
    fi
}

# --- killall script ---
create_killall() {
    tmp=$(new_tmp "${BIN_DIR}")
    cat >"${tmp}" <<EOF
#!/bin/sh
# Stops k3rs and everything it started: containers (shims), mounts, network namespaces,
# the cni0 bridge and its veths, and iptables/nftables rules. Generated by install.sh.
[ "\$(id -u)" -eq 0 ] || exec sudo "\$0" "\$@"
DATA_DIR='${DATA_DIR}'
SYSTEMD_DIR='${SYSTEMD_DIR}'
BIN='${BIN}'
EOF
    cat >>"${tmp}" <<'EOF'

set -x

for service in "${SYSTEMD_DIR}"/k3rs*.service; do
    [ -s "${service}" ] && systemctl stop "$(basename "${service}")"
done
for service in /etc/init.d/k3rs*; do
    [ -x "${service}" ] && "${service}" stop
done

# k3rs itself, and containerd or its shims started for k3rs (their command line names a
# k3rs path). Other processes that merely mention a k3rs path (an editor, a shell) live.
k3rs_pids() {
    # The awk program never spells a full "<dir>/" itself, so it does not match itself.
    ps -e -o pid= -o args= | awk -v data="${DATA_DIR}" -v run=/run/k3rs -v bin="${BIN}" -v self="$$" '
        $1 == self { next }
        $2 == bin { print $1; next }
        { n = split($2, part, "/"); name = part[n] }
        name ~ /^containerd(-shim.*)?$/ && (index($0, data "/") || index($0, run "/")) { print $1 }'
}

pstree() {
    for pid in "$@"; do
        for child in $(ps -e -o ppid= -o pid= | awk -v p="${pid}" '$1 == p { print $2 }'); do
            pstree "${child}"
        done
        echo "${pid}"
    done
}

{ set +x; } 2>/dev/null
# shellcheck disable=SC2046 # one pid per word
pids=$(pstree $(k3rs_pids))
set -x
# shellcheck disable=SC2086 # one pid per word
[ -n "${pids}" ] && kill -9 ${pids} 2>/dev/null

do_unmount_and_remove() {
    { set +x; } 2>/dev/null
    awk -v path="$1" '$2 == path || index($2, path "/") == 1 || (substr(path, length(path)) == "-" && index($2, path) == 1) { print $2 }' /proc/self/mounts |
        sort -r | while read -r mnt; do
            echo "umount ${mnt}"
            umount -f "${mnt}" && rm -rf "${mnt}"
        done
    set -x
}

do_unmount_and_remove /run/k3rs
do_unmount_and_remove "${DATA_DIR}"
do_unmount_and_remove /run/netns/k3rs-

# Network namespaces made for pods.
for ns in /run/netns/k3rs-*; do
    [ -e "${ns}" ] && ip netns delete "$(basename "${ns}")" 2>/dev/null
done

# The bridge and the host ends of pod veths.
if command -v ip >/dev/null 2>&1; then
    for link in $(ip -o link show master cni0 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
        ip link delete "${link}"
    done
    ip link show cni0 >/dev/null 2>&1 && ip link delete cni0
fi

# iptables chains (and the rules jumping to them) named K3RS* or CNI-*.
for ipt in iptables ip6tables; do
    if command -v "${ipt}-save" >/dev/null 2>&1 && command -v "${ipt}-restore" >/dev/null 2>&1; then
        "${ipt}-save" | grep -v -E 'K3RS|CNI-' | "${ipt}-restore"
    fi
done
# nftables tables made by k3rs.
if command -v nft >/dev/null 2>&1; then
    nft list tables 2>/dev/null | awk '$3 ~ /^(k3rs|K3RS)/ { print $2, $3 }' |
        while read -r family table; do nft delete table "${family}" "${table}"; done
fi

rm -rf /run/k3rs /var/lib/cni/networks/k3rs* /var/lib/cni/results/k3rs*
EOF
    if install_file "${tmp}" "${KILLALL_K3RS_SH}" 755; then
        info "Creating killall script ${KILLALL_K3RS_SH}"
    fi
}

# --- uninstall script ---
create_uninstall() {
    tmp=$(new_tmp "${BIN_DIR}")
    cat >"${tmp}" <<EOF
#!/bin/sh
# Removes the ${SYSTEM_NAME} service and, when no other k3rs service remains, k3rs itself
# with its data. Generated by install.sh.
[ "\$(id -u)" -eq 0 ] || exec sudo "\$0" "\$@"
SYSTEM_NAME='${SYSTEM_NAME}'
BIN='${BIN}'
BIN_DIR='${BIN_DIR}'
SYSTEMD_DIR='${SYSTEMD_DIR}'
DATA_DIR='${DATA_DIR}'
CONFIG_DIR='${CONFIG_DIR}'
KILLALL='${KILLALL_K3RS_SH}'
FILE_SERVICE='${FILE_K3RS_SERVICE}'
FILE_ENV='${FILE_K3RS_ENV}'
EOF
    cat >>"${tmp}" <<'EOF'
set -x

[ -x "${KILLALL}" ] && "${KILLALL}"

if command -v systemctl >/dev/null 2>&1 && [ -f "${SYSTEMD_DIR}/${SYSTEM_NAME}.service" ]; then
    systemctl disable "${SYSTEM_NAME}"
    systemctl reset-failed "${SYSTEM_NAME}"
    REMOVED_UNIT=true
fi
if command -v rc-update >/dev/null 2>&1 && [ -f "/etc/init.d/${SYSTEM_NAME}" ]; then
    rc-update delete "${SYSTEM_NAME}" default
fi
[ -n "${FILE_SERVICE}" ] && rm -f "${FILE_SERVICE}"
[ -n "${FILE_ENV}" ] && rm -f "${FILE_ENV}"
[ "${REMOVED_UNIT}" = true ] && systemctl daemon-reload

remove_self() {
    rm -f "$0"
}
trap remove_self EXIT

if (ls "${SYSTEMD_DIR}"/k3rs*.service || ls /etc/init.d/k3rs*) >/dev/null 2>&1; then
    { set +x; } 2>/dev/null
    echo "Additional k3rs services installed, keeping the k3rs binary and data"
    exit 0
fi

# The kubectl symlink made by install.sh (only if it still points to k3rs).
if [ -L "${BIN_DIR}/kubectl" ] && [ "$(readlink "${BIN_DIR}/kubectl")" = k3rs ]; then
    rm -f "${BIN_DIR}/kubectl"
fi

rm -rf "${CONFIG_DIR}" "${DATA_DIR}" /run/k3rs
rm -f "${BIN}" "${KILLALL}"
EOF
    if install_file "${tmp}" "${UNINSTALL_K3RS_SH}" 755; then
        info "Creating uninstall script ${UNINSTALL_K3RS_SH}"
    fi
}

# --- env file: K3RS_* (and proxy) variables for the service, mode 0600 ---
create_env_file() {
    [ -n "${FILE_K3RS_ENV}" ] || return 0
    tmp=$(new_tmp "$(dirname "${FILE_K3RS_ENV}")")
    names=$(env | sed -n -e 's/^\(K3RS_[A-Za-z0-9_]*\)=.*/\1/p' \
        -e 's/^\(CONTAINERD_[A-Za-z0-9_]*\)=.*/\1/p' \
        -e 's/^\([A-Z]*_PROXY\)=.*/\1/p' -e 's/^\([a-z]*_proxy\)=.*/\1/p' | sort -u)
    for name in ${names}; do
        # names matched [A-Za-z0-9_] above, so eval only reads a variable.
        eval "value=\${${name}}"
        # shellcheck disable=SC2154 # value is set by the eval above
        # systemd and sh both unescape \\ \" \$ \` inside double quotes.
        escaped=$(printf '%s' "${value}" | sed -e 's/[\\"$`]/\\&/g')
        printf '%s="%s"\n' "${name}" "${escaped}" >>"${tmp}"
    done
    if install_file "${tmp}" "${FILE_K3RS_ENV}" 600; then
        info "env: Creating environment file ${FILE_K3RS_ENV}"
    fi
}

# --- service file ---
template() {
    if [ -n "${SCRIPT_DIR}" ] && [ -f "${SCRIPT_DIR}/systemd/$1" ]; then
        cat "${SCRIPT_DIR}/systemd/$1"
        return
    fi
    # Running outside a checkout: the same units as systemd/*.service in the repository.
    case "$1" in
        k3rs.service) role=server ;;
        *) role=agent ;;
    esac
    cat <<EOF
[Unit]
Description=k3rs - lightweight Kubernetes in one binary (${role})
Wants=network-online.target
After=network-online.target

[Install]
WantedBy=multi-user.target

[Service]
Type=notify
EnvironmentFile=-/etc/default/%N
EnvironmentFile=-/etc/sysconfig/%N
EnvironmentFile=-/etc/systemd/system/$1.env
# Stopping k3rs leaves containers (their shims) running; k3rs-killall.sh stops them.
KillMode=process
Delegate=yes
User=root
# Containers are accounted in their own cgroups (Delegate=yes); limits on this unit
# would only add kernel accounting work and cap the pods' file descriptors.
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s
ExecStartPre=-/sbin/modprobe br_netfilter
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/local/bin/k3rs ${role}
EOF
}

create_systemd_service_file() {
    if [ "${CMD_K3RS}" = server ]; then unit=k3rs.service; else unit=k3rs-agent.service; fi
    tmp=$(new_tmp "${SYSTEMD_DIR}")
    exec_line="ExecStart=${BIN} ${CMD_K3RS}${EXEC_ARGS}"
    env_line="EnvironmentFile=-${FILE_K3RS_ENV}"
    template "${unit}" | awk -v exec_line="${exec_line}" -v env_line="${env_line}" '
        /^ExecStart=/ { print exec_line; next }
        /^EnvironmentFile=-\/etc\/systemd\/system\// { print env_line; next }
        { print }' >"${tmp}"
    if install_file "${tmp}" "${FILE_K3RS_SERVICE}" 644; then
        info "systemd: Creating service file ${FILE_K3RS_SERVICE}"
        UNIT_CHANGED=true
    fi
}

create_openrc_service_file() {
    tmp=$(new_tmp "$(dirname "${FILE_K3RS_SERVICE}")")
    cat >"${tmp}" <<EOF
#!/sbin/openrc-run
# ${SYSTEM_NAME}: generated by the k3rs install.sh.
depend() {
    after network-online
    want cgroups
}

start_pre() {
    modprobe br_netfilter 2>/dev/null || true
    modprobe overlay 2>/dev/null || true
}

supervisor=supervise-daemon
name=${SYSTEM_NAME}
command="${BIN}"
command_args="${CMD_K3RS}$(printf '%s' "${EXEC_ARGS}" | sed -e 's/%%/%/g' -e 's/\$\$/$/g' -e 's/"/\\"/g')"
output_log=/var/log/${SYSTEM_NAME}.log
error_log=/var/log/${SYSTEM_NAME}.log
pidfile="/var/run/${SYSTEM_NAME}.pid"
respawn_delay=5
respawn_max=0

set -o allexport
if [ -f /etc/environment ]; then . /etc/environment; fi
if [ -f ${FILE_K3RS_ENV} ]; then . ${FILE_K3RS_ENV}; fi
set +o allexport
EOF
    if install_file "${tmp}" "${FILE_K3RS_SERVICE}" 755; then
        info "openrc: Creating service file ${FILE_K3RS_SERVICE}"
    fi
}

# --- enable and start ---
systemd_enable_and_start() {
    [ "${UNIT_CHANGED}" = true ] && $SUDO systemctl daemon-reload
    if [ "${INSTALL_K3RS_SKIP_ENABLE}" != true ]; then
        info "systemd: Enabling ${SYSTEM_NAME} unit"
        $SUDO systemctl enable "${SERVICE_K3RS}" >/dev/null
    fi
    [ "${INSTALL_K3RS_SKIP_START}" = true ] && return
    if [ "${PRE_HASHES}" = "$(installed_hashes)" ] &&
        $SUDO systemctl is-active --quiet "${SERVICE_K3RS}"; then
        info "No change detected so skipping service start"
        return
    fi
    info "systemd: Starting ${SYSTEM_NAME}"
    $SUDO systemctl restart "${SERVICE_K3RS}"
}

openrc_enable_and_start() {
    if [ "${INSTALL_K3RS_SKIP_ENABLE}" != true ]; then
        info "openrc: Enabling ${SYSTEM_NAME} service for default runlevel"
        $SUDO rc-update add "${SYSTEM_NAME}" default >/dev/null
    fi
    [ "${INSTALL_K3RS_SKIP_START}" = true ] && return
    if [ "${PRE_HASHES}" = "$(installed_hashes)" ] &&
        $SUDO rc-service "${SYSTEM_NAME}" status >/dev/null 2>&1; then
        info "No change detected so skipping service start"
        return
    fi
    info "openrc: Starting ${SYSTEM_NAME}"
    $SUDO rc-service "${SYSTEM_NAME}" restart
}

main() {
    setup_env "$@"
    verify_system
    PRE_HASHES=$(installed_hashes)
    UNIT_CHANGED=false
    install_deps
    setup_binary
    create_symlinks
    create_killall
    create_uninstall
    if [ "${HAS_SYSTEMD}" = true ]; then
        create_env_file
        create_systemd_service_file
        systemd_enable_and_start
    elif [ "${HAS_OPENRC}" = true ]; then
        create_env_file
        create_openrc_service_file
        openrc_enable_and_start
    else
        warn "neither systemd nor openrc found: no service was created"
        info "start k3rs yourself, e.g.: ${BIN} ${CMD_K3RS}$(printf '%s' "${EXEC_ARGS}" | sed -e 's/%%/%/g' -e 's/\$\$/$/g')"
    fi
}

main "$@"
