#!/usr/bin/env bash
# Start a real OpenStack Keystone (PyPI keystone 30.0.0, gunicorn, SQLite, fernet)
# on 127.0.0.1 for tests. Idempotent: re-running reuses the venv, keys, DB and a
# live server. Prints `KS_URL=...` on stdout; progress goes to stderr.
#
# Env: KS_DIR (default /tmp/keystone-test), KS_PORT (default 5000),
#      KS_ADMIN_PASSWORD (default AdminPass123), KS_PY (default python3),
#      KS_UNPINNED=1 to install the newest releases instead of the pins below.
#
# The server is started with `setsid ... </dev/null` and `--daemon`, so no child
# keeps the caller's stdout/stderr open. Every wait loop is bounded.
set -euo pipefail
KS_DIR=${KS_DIR:-/tmp/keystone-test}
KS_PORT=${KS_PORT:-5000}
KS_ADMIN_PASSWORD=${KS_ADMIN_PASSWORD:-AdminPass123}
KS_PY=${KS_PY:-python3}
KS_URL="http://127.0.0.1:${KS_PORT}/v3"
mkdir -p "$KS_DIR"/{etc,fernet-keys,credential-keys,log}
chmod 700 "$KS_DIR/fernet-keys" "$KS_DIR/credential-keys"
cd "$KS_DIR"
ms() { echo $(( $(date +%s%N) / 1000000 )); }
T0=$(ms)
log() { echo "[keystone-up] $*" >&2; }
step() { # run a setup command quietly (output -> log/setup.log) and print its wall time
  local s; s=$(ms)
  if ! "$@" </dev/null >>"$KS_DIR/log/setup.log" 2>&1; then
    log "FAILED: $*"; tail -30 "$KS_DIR/log/setup.log" >&2; exit 1
  fi
  log "$(( $(ms) - s )) ms: ${STEP_NAME:-$1}"
}
ks_up() { curl -fs --max-time 2 -o /dev/null "$KS_URL"; }
# true if anything at all accepts TCP connections on the port (curl rc 7 = refused)
port_busy() { local rc=0; curl -s --max-time 2 -o /dev/null "http://127.0.0.1:${KS_PORT}/" || rc=$?; [ "$rc" -ne 7 ]; }
our_pid() { # pid from our pid file if that process is alive and is a gunicorn
  local pid
  [ -s "$KS_DIR/gunicorn.pid" ] || return 1
  pid=$(cat "$KS_DIR/gunicorn.pid")
  kill -0 "$pid" 2>/dev/null || return 1
  local cmd; cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ $cmd == *gunicorn* ]] || return 1
  echo "$pid"
}

# 1. venv + packages, pinned to the exact set the recipe was tested with
cat > constraints.txt <<'PINS'
alembic==1.20.1
amqp==5.4.2
aniso8601==10.0.1
attrs==26.1.0
bcrypt==5.0.0
blinker==1.9.0
cachetools==8.0.2
certifi==2026.10.19.post1
cffi==2.1.1
charset-normalizer==3.5.3
click==8.5.1
cryptography==50.0.2
debtcollector==3.1.0
decorator==5.3.1
defusedxml==0.7.1
dnspython==2.9.2
dogpile.cache==1.5.0
elementpath==4.8.0
eventlet==0.41.3
fasteners==0.20
Flask==3.1.3
Flask-RESTful==0.3.10
futurist==3.5.0
greenlet==3.5.6
gunicorn==27.0.1
idna==3.20
iso8601==2.1.0
itsdangerous==2.2.0
Jinja2==3.1.6
jsonschema==4.26.0
jsonschema-specifications==2025.9.1
keystone==30.0.0
keystoneauth1==5.18.1
keystonemiddleware==13.0.1
kombu==5.7.0
Mako==1.4.3
MarkupSafe==3.0.4
msgpack==1.2.4
netaddr==1.3.0
oauthlib==4.0.1
os-service-types==1.9.0
oslo.cache==4.3.0
oslo.concurrency==7.6.1
oslo.config==10.7.0
oslo.context==6.5.0
oslo.db==18.1.1
oslo.i18n==6.9.0
oslo.log==8.3.2
oslo.messaging==18.3.1
oslo.metrics==0.17.0
oslo.middleware==8.2.0
oslo.policy==6.0.1
oslo.serialization==5.11.0
oslo.service==4.8.0
oslo.upgradecheck==2.8.0
oslo.utils==10.2.0
osprofiler==4.4.0
packaging==26.4
Paste==3.10.1
PasteDeploy==3.1.0
pbr==7.1.3
prettytable==3.18.0
prometheus_client==0.26.0
psutil==7.2.2
pycadf==4.1.0
pycparser==3.12
PyJWT==2.15.1
pyOpenSSL==26.4.0
pyparsing==3.3.3
pysaml2==7.5.5
python-dateutil==4.0.0
python-keystoneclient==6.0.0
pytz==2026.6
PyYAML==6.0.4
referencing==0.37.0
repoze-lru==0.8
requests==2.34.2
rfc3986==2.0.0
Routes==2.5.1
rpds-py==2026.9.1
six==1.17.0
SQLAlchemy==2.1.9
statsd==4.0.1
stevedore==5.10.0
testresources==2.1.2
testscenarios==0.7.0
typing_extensions==4.16.0
tzdata==2026.6
urllib3==2.8.0
vine==5.1.0
wcwidth==0.9.4
WebOb==1.8.11
Werkzeug==3.1.9
wrapt==2.5.2
xmlschema==2.5.1
yappi==1.7.6
PINS
if ! "$KS_DIR/venv/bin/python" -c 'import keystone, gunicorn' 2>/dev/null; then
  [ -x "$KS_DIR/venv/bin/python" ] || STEP_NAME="venv" step "$KS_PY" -m venv "$KS_DIR/venv"
  if [ -n "${KS_UNPINNED:-}" ]; then pins=(); else pins=(-c "$KS_DIR/constraints.txt"); fi
  STEP_NAME="pip install" step "$KS_DIR/venv/bin/pip" install -q --disable-pip-version-check "${pins[@]}" keystone gunicorn
fi
KM=("$KS_DIR/venv/bin/keystone-manage" --config-file "$KS_DIR/etc/keystone.conf")

# 2. config (SQLite, fernet, in-process cache, fast bcrypt for tests)
cat > etc/keystone.conf <<EOF
[DEFAULT]
log_file = $KS_DIR/log/keystone.log
debug = false
[database]
connection = sqlite:///$KS_DIR/keystone.db
[token]
provider = fernet
expiration = 3600
[fernet_tokens]
key_repository = $KS_DIR/fernet-keys
[fernet_receipts]
key_repository = $KS_DIR/fernet-keys
[credential]
key_repository = $KS_DIR/credential-keys
[identity]
# bcrypt cost 4 instead of 12: token issue ~15-25 ms instead of ~320 ms. Tests only.
password_hash_rounds = 4
[cache]
# Without a cache one token validation runs ~600 SQL statements (~500 ms).
# dogpile.cache.memory is per process: keep gunicorn at ONE worker (threads are fine).
enabled = true
backend = dogpile.cache.memory
EOF

# oslo.config parses sys.argv, so gunicorn's own CLI flags must be hidden from it.
cat > keystone_wsgi.py <<'EOF'
import sys
sys.argv = sys.argv[:1]
from keystone.server import wsgi as _ks_wsgi  # noqa: E402
application = _ks_wsgi.initialize_public_application()
EOF

# 3. keys + schema + bootstrap (each step skipped when already done)
[ -e fernet-keys/0 ] || STEP_NAME="fernet_setup" step "${KM[@]}" fernet_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
[ -e credential-keys/0 ] || STEP_NAME="credential_setup" step "${KM[@]}" credential_setup --keystone-user "$(id -un)" --keystone-group "$(id -gn)"
if [ ! -e .bootstrapped ]; then
  STEP_NAME="db_sync" step "${KM[@]}" db_sync
  STEP_NAME="bootstrap" step "${KM[@]}" bootstrap --bootstrap-password "$KS_ADMIN_PASSWORD" \
    --bootstrap-username admin --bootstrap-project-name admin --bootstrap-role-name admin \
    --bootstrap-service-name keystone --bootstrap-region-id RegionOne \
    --bootstrap-admin-url "$KS_URL" --bootstrap-internal-url "$KS_URL" --bootstrap-public-url "$KS_URL"
  touch .bootstrapped
fi

# 4. server
running=""
if pid=$(our_pid); then
  # Our gunicorn is alive: give it a bounded chance to answer (it may be starting).
  for _ in $(seq 1 50); do ks_up && { running=1; break; }; sleep 0.2; done
  if [ -z "$running" ]; then
    log "pid $pid alive but $KS_URL not answering; restarting it"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
fi
if [ -n "$running" ]; then
  log "already running, pid $(cat gunicorn.pid)"
else
  rm -f gunicorn.pid
  if port_busy; then
    log "port $KS_PORT on 127.0.0.1 is already in use by another process (not ours: no live $KS_DIR/gunicorn.pid)"
    exit 1
  fi
  s=$(ms)
  # Access log format = gunicorn's default, given explicitly so that lines always look like
  #   127.0.0.1 - - [date] "GET /v3/auth/tokens?nocatalog HTTP/1.1" 200 1234 "-" "agent"
  OS_KEYSTONE_CONFIG_DIR="$KS_DIR/etc" setsid "$KS_DIR/venv/bin/gunicorn" --chdir "$KS_DIR" \
    --bind "127.0.0.1:${KS_PORT}" --workers 1 --threads 4 --no-control-socket \
    --access-logfile "$KS_DIR/log/access.log" \
    --access-logformat '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"' \
    --error-logfile "$KS_DIR/log/gunicorn.log" \
    --pid "$KS_DIR/gunicorn.pid" --daemon keystone_wsgi:application \
    </dev/null >>"$KS_DIR/log/gunicorn.out" 2>&1
  for _ in $(seq 1 300); do [ -s gunicorn.pid ] && ks_up && break; sleep 0.1; done
  if ! { [ -s gunicorn.pid ] && ks_up; }; then
    log "keystone did not come up on $KS_URL"
    tail -30 log/gunicorn.out log/gunicorn.log log/keystone.log >&2 2>/dev/null || true
    exit 1
  fi
  log "$(( $(ms) - s )) ms: server start until GET /v3 = 200 (pid $(cat gunicorn.pid))"
fi
log "$(( $(ms) - T0 )) ms total"
echo "KS_URL=$KS_URL"
