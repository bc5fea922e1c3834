#!/usr/bin/env bash
# Installs respaldo for the whole machine, as root: a virtual environment under $PREFIX
# (default /opt/respaldo) built with Debian's own python3, and $BINDIR/respaldo (default
# /usr/local/bin) linked to it. Any user can run it, the PostgreSQL server's OS user
# included: archive_command and restore_command run respaldo as that user, and an
# interpreter under a private directory (root's pyenv, say) fails there with
# "Permission denied". See docs/install.md.
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=${PREFIX:-/opt/respaldo}
BINDIR=${BINDIR:-/usr/local/bin}
# The service's unit goes here; an empty SYSTEMD_DIR installs none.
SYSTEMD_DIR=${SYSTEMD_DIR-/etc/systemd/system}
# The service runs as the repository's owner: the PostgreSQL server's OS user where there
# is one (archive_command writes to the same repository as that user), else `respaldo`.
if [ -z "${SERVICE_USER:-}" ]; then
    if id postgres >/dev/null 2>&1; then SERVICE_USER=postgres; else SERVICE_USER=respaldo; fi
fi
SYSTEM_PYTHON=/usr/bin/python3

need_apt=()
[ -x "$SYSTEM_PYTHON" ] || need_apt+=(python3)
"$SYSTEM_PYTHON" -c "import venv, ensurepip" 2>/dev/null || need_apt+=(python3-venv)
# pg_dump, pg_restore, pg_basebackup and psql; a server is not needed on this machine.
command -v pg_dump >/dev/null 2>&1 || need_apt+=(postgresql-client)
# libpq, which psycopg runs on (pyproject.toml says why; postgresql-client brings it).
ldconfig -p 2>/dev/null | grep 'libpq\.so\.5 ' >/dev/null || need_apt+=(libpq5)
if [ ${#need_apt[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi

# A fresh environment each time: an upgrade replaces the code, never mixes two versions.
# A venv records its own path in its scripts, so it is built where it will live; the old
# one is kept aside and put back if the new one fails.
umask 022
mkdir -p "$(dirname "$PREFIX")" "$BINDIR"
rm -rf "$PREFIX.old"
# $BINDIR/respaldo is switched by a rename, never removed: the server runs it for every
# WAL segment (archive_command) and in a recovery (restore_command, whose "command not
# found", 127, aborts the recovery).
link_bin() {
    ln -sfn "$1" "$BINDIR/.respaldo.new"
    mv -Tf "$BINDIR/.respaldo.new" "$BINDIR/respaldo"
}
installed=no
bridge="$PREFIX.upgrading"
put_back() {
    if [ "$installed" != yes ] && [ -d "$PREFIX.old" ]; then
        rm -rf "$PREFIX"
        mv "$PREFIX.old" "$PREFIX"
        echo "install failed; the previous respaldo in $PREFIX is back" >&2
    fi
    if [ "$(readlink "$BINDIR/respaldo" || true)" = "$bridge" ]; then
        link_bin "$PREFIX/bin/respaldo"
    fi
    rm -f "$bridge"
}
trap put_back EXIT
# While the new environment is built, $BINDIR/respaldo runs the previous one, moved
# aside: its scripts name $PREFIX, being rebuilt, but its own python finds its libraries
# wherever it is (by the pyvenv.cfg beside it). Without this every wal-push failed, and a
# restore test's recovery aborted, for the whole install (30-40 s, measured).
if [ -d "$PREFIX" ]; then
    {
        echo '#!/bin/bash'
        echo "# respaldo while scripts/install.sh builds a new one in $PREFIX"
        echo "for d in $(printf '%q' "$PREFIX.old") $(printf '%q' "$PREFIX"); do"
        echo '    if [ -x "$d/bin/python" ] && [ -f "$d/bin/respaldo" ]; then'
        echo '        exec "$d/bin/python" "$d/bin/respaldo" "$@"'
        echo '    fi'
        echo 'done'
        echo 'echo "respaldo is being installed; try again" >&2'
        echo 'exit 1'
    } > "$bridge"
    chmod 0755 "$bridge"
    link_bin "$bridge"
    mv "$PREFIX" "$PREFIX.old"
fi
"$SYSTEM_PYTHON" -m venv "$PREFIX"
"$PREFIX/bin/pip" install -q --upgrade pip
"$PREFIX/bin/pip" install -q .
# Fail now, not in the middle of a backup, if the compiled chunker does not load.
"$PREFIX/bin/python" -c "import respaldo.repository.chunker as c; c.load_fastcdc()"
# Nor when psycopg finds no libpq.
"$PREFIX/bin/python" -c "import psycopg; psycopg.pq.version()"
chmod -R a+rX "$PREFIX"
installed=yes
link_bin "$PREFIX/bin/respaldo"
rm -rf "$PREFIX.old"

if [ -n "$SYSTEMD_DIR" ]; then
    id "$SERVICE_USER" >/dev/null 2>&1 \
        || useradd --system --home-dir /var/lib/respaldo --shell /usr/sbin/nologin "$SERVICE_USER"
    group=$(id -gn "$SERVICE_USER")
    mkdir -p "$SYSTEMD_DIR"
    # respaldo.service runs serve; respaldo-worker@QUEUE.service a worker of QUEUE on the
    # machines of a fleet (docs/scaling.md), restarted when it loses the catalog.
    for unit in respaldo.service respaldo-worker@.service; do
        sed -e "s|@USER@|$SERVICE_USER|g" -e "s|@GROUP@|$group|g" -e "s|@BINDIR@|$BINDIR|g" \
            "packaging/$unit.in" > "$SYSTEMD_DIR/$unit"
        chmod 0644 "$SYSTEMD_DIR/$unit"
    done
    echo "unit $SYSTEMD_DIR/respaldo.service (user $SERVICE_USER): write" \
        "/etc/respaldo/respaldo.toml, then systemctl daemon-reload; systemctl enable --now respaldo" \
        "(or, on a worker machine, systemctl enable --now respaldo-worker@QUEUE)"
fi
echo "respaldo installed in $PREFIX; $BINDIR/respaldo runs it"
