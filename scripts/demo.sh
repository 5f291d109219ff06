#!/bin/bash
# make demo: the whole onramp flow on this machine, on 127.0.0.1 only.
#
# Starts a redirector, an organisation cloud, a staging and a production
# conductor, squid with Basic auth (the router's only way out: its agent is
# configured with that proxy and nothing else) and a software TPM (swtpm);
# provisions one router at the factory; sets up organisation, site, claim,
# conductors, secrets and root CAs with onrampctl only; runs the router's
# agent and prints each step of its onboarding as it happens; migrates the
# router to production and asks the production conductor for its state.
# Everything it started is stopped at the end (by PID), also on failure.
#
# Every operator command it runs is written, as run, to operator-commands.sh in
# the demo's directory: a script a person can read and run again.
#
# Environment: ONRAMP_BUILD (default build), DEMO_KEEP=1 (make demo KEEP=1)
# keeps the lab running afterwards, with its dashboard, until
# `scripts/demo.sh stop` (make demo-stop); DEMO_TIMEOUT (seconds for the
# flow, default 90).
#
# Usage: scripts/demo.sh [stop]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${ONRAMP_BUILD:-$ROOT/build}
CTL=$BUILD/ctl/onrampctl
AGENT=$BUILD/agent/onramp-agent
REDIRECTD=$BUILD/redirectd/onramp-redirectd
CLOUDD=$BUILD/cloudd/onramp-cloudd
CONDUCTORD=$BUILD/conductord/onramp-conductord
TIMEOUT=${DEMO_TIMEOUT:-90}
KEEP=${DEMO_KEEP:-0}
# A kept lab: its directory and the PIDs to stop, for `scripts/demo.sh stop`.
CURRENT=$BUILD/demo-current

# make demo-stop: stops a kept lab by the PIDs it wrote, then removes it.
if [ "${1:-}" = stop ]; then
	if [ ! -f "$CURRENT" ]; then
		echo "demo: no kept demo to stop ($CURRENT is absent)"
		exit 0
	fi
	read -r dir <"$CURRENT"
	tail -n +2 "$CURRENT" | tac | while read -r pid name; do
		kill -TERM "$pid" 2>/dev/null || continue
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		echo "demo: stopped $name (pid $pid)"
	done
	case "$dir" in /tmp/onramp-demo.*) rm -rf "$dir" ;; esac
	rm -f "$CURRENT"
	echo "demo: stopped; $dir removed"
	exit 0
fi
[ $# -eq 0 ] || {
	echo "usage: scripts/demo.sh [stop]" >&2
	exit 2
}
if [ -f "$CURRENT" ]; then
	echo "demo: a kept demo is still running ($(head -n 1 "$CURRENT")): make demo-stop first" >&2
	exit 1
fi
SERIAL=SSR1000-DEMO-0001
ROUTER=branch-paris-1
T0=$(date +%s)

STEP="starting"
SQUID_DIR=""
PIDS=()
NAMES=()
DIR=$(mktemp -d /tmp/onramp-demo.XXXXXX)
chmod 755 "$DIR"
OPS=$DIR/operator-commands.sh
printf '#!/bin/bash\n# The operator commands make demo ran, in order, as run (%s).\nset -e\n' \
	"$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$OPS"
chmod 755 "$OPS"

# Runs an operator's command and writes it to operator-commands.sh first.
op() {
	printf '%q ' "$@" >>"$OPS"
	printf '\n' >>"$OPS"
	"$@"
}

# The same for a command whose output is kept in a file: op_to FILE COMMAND...
op_to() {
	local out=$1
	shift
	printf '%q ' "$@" >>"$OPS"
	printf '> %q\n' "$out" >>"$OPS"
	"$@" >"$out"
}

# Remembers a process we started ($1 its name): stopped at the end unless kept.
started() {
	PIDS+=("$2")
	NAMES+=("$1")
}

say() { printf 'demo: %s\n' "$*"; }
fail() {
	say "FAILED at step '$STEP': $*" >&2
	exit 1
}

# The logs and the operator script outlive a lab that is removed: build/demo/.
save_logs() {
	local out=$BUILD/demo
	rm -rf "$out" && mkdir -p "$out/logs"
	cp "$DIR"/*.log "$out/logs/" 2>/dev/null || true
	[ -f "$SQUID_DIR/access.log" ] && cp "$SQUID_DIR/access.log" "$out/logs/squid-access.log"
	cp "$OPS" "$out/operator-commands.sh"
	say "logs in $out/logs/ (one per program):"
	for f in "$out"/logs/*.log; do
		[ -f "$f" ] && say "  $(basename "$f")"
	done
	say "the operator commands it ran: $out/operator-commands.sh"
}

# Stops every process we started, newest first, by PID (a kept lab: only on failure).
cleanup() {
	local rc=$?
	save_logs || true
	if [ "$KEEP" = 1 ] && [ $rc -eq 0 ]; then
		{
			echo "$DIR"
			for i in "${!PIDS[@]}"; do echo "${PIDS[i]} ${NAMES[i]}"; done
		} >"$CURRENT"
		say "kept: everything above is still running; stop it with: make demo-stop"
		exit 0
	fi
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		pid=${PIDS[i]}
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [ $rc -ne 0 ]; then
		say "logs of this run:" >&2
		for f in "$DIR"/*.log; do
			[ -f "$f" ] || continue
			echo "----- $(basename "$f") (last 15 lines)" >&2
			tail -n 15 "$f" >&2
		done
	fi
	if [ "$KEEP" = 1 ]; then
		say "kept $DIR"
	else
		rm -rf "$DIR"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for p in "$CTL" "$AGENT" "$REDIRECTD" "$CLOUDD" "$CONDUCTORD"; do
	[ -x "$p" ] || fail "$p is missing (run make first)"
done
for p in squid swtpm htpasswd openssl python3; do
	command -v "$p" >/dev/null || fail "$p is not installed (scripts/install-deps.sh demo)"
done

# A free TCP port on 127.0.0.1 (and, with "pair", one whose next port is free too).
free_port() {
	python3 - "$@" <<'EOF'
import socket, sys
pair = len(sys.argv) > 1
for _ in range(100):
    a = socket.socket(); a.bind(("127.0.0.1", 0)); port = a.getsockname()[1]
    if not pair:
        print(port); break
    b = socket.socket()
    try:
        b.bind(("127.0.0.1", port + 1)); print(port); break
    except OSError:
        pass
    finally:
        a.close(); b.close()
EOF
}

# Waits until something accepts on 127.0.0.1:$1 (pid $2 must stay alive).
wait_port() {
	for _ in $(seq 150); do
		kill -0 "$2" 2>/dev/null || fail "$3 exited (see its log)"
		if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	fail "$3 does not listen on port $1"
}

# A JSON field from stdin: jfield 'expression on d'
jfield() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

# ---- certificates for the redirector and the cloud (openssl CLI) -------------
STEP="certificates"
pki() {
	local name=$1
	printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$DIR/$name.ext"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-keyout "$DIR/$name-ca.key" -out "$DIR/$name-ca.pem" -subj "/CN=onramp demo $name CA" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
		-keyout "$DIR/$name.key" -out "$DIR/$name.csr" 2>/dev/null
	openssl x509 -req -in "$DIR/$name.csr" -CA "$DIR/$name-ca.pem" -CAkey "$DIR/$name-ca.key" \
		-CAcreateserial -days 2 -extfile "$DIR/$name.ext" -out "$DIR/$name.pem" 2>/dev/null
}
pki redirect || fail "openssl could not make the redirector's certificate"
pki cloud || fail "openssl could not make the cloud's certificate"
say "certificates for the redirector and the cloud issued (openssl)"

# ---- squid: Basic auth, CONNECT to 127.0.0.1 only ----------------------------
STEP="squid"
SQUID_DIR=$DIR/squid
mkdir -p "$SQUID_DIR"
SQUID_PORT=$(free_port)
PROXY_USER=router
PROXY_PASSWORD=demo-proxy-$(openssl rand -hex 6)
htpasswd -b -c "$SQUID_DIR/htpasswd" "$PROXY_USER" "$PROXY_PASSWORD" 2>/dev/null
printf '%s\n' "$PROXY_PASSWORD" >"$DIR/proxy-password"
chmod 600 "$DIR/proxy-password"
cat >"$SQUID_DIR/squid.conf" <<EOF
http_port 127.0.0.1:$SQUID_PORT
pid_filename $SQUID_DIR/squid.pid
cache_log $SQUID_DIR/cache.log
access_log stdio:$SQUID_DIR/access.log
cache deny all
auth_param basic program /usr/lib/squid/basic_ncsa_auth $SQUID_DIR/htpasswd
acl authenticated proxy_auth REQUIRED
acl here dst 127.0.0.1
http_access deny !here
http_access allow authenticated
http_access deny all
shutdown_lifetime 0 seconds
pinger_enable off
EOF
chown -R proxy:proxy "$SQUID_DIR" 2>/dev/null || true
squid -N -f "$SQUID_DIR/squid.conf" >"$DIR/squid.log" 2>&1 &
started squid $!
wait_port "$SQUID_PORT" "${PIDS[-1]}" squid
say "squid listening on 127.0.0.1:$SQUID_PORT (Basic auth, user $PROXY_USER): the router's only way out"

# ---- swtpm ---------------------------------------------------------------------
STEP="swtpm"
TPM_PORT=$(free_port pair)
mkdir -p "$DIR/tpm"
swtpm socket --tpmstate "dir=$DIR/tpm" --tpm2 \
	--server "type=tcp,port=$TPM_PORT,bindaddr=127.0.0.1" \
	--ctrl "type=tcp,port=$((TPM_PORT + 1)),bindaddr=127.0.0.1" \
	--flags not-need-init,startup-clear >"$DIR/swtpm.log" 2>&1 &
started swtpm $!
wait_port "$((TPM_PORT + 1))" "${PIDS[-1]}" swtpm
TCTI="swtpm:host=127.0.0.1,port=$TPM_PORT"
say "software TPM (swtpm) on 127.0.0.1:$TPM_PORT"

# init (the first admin token, into $DIR/$3-admin.token), then serve on port $4.
cloud_daemon() {
	local bin=$1 name=$2 token=$DIR/$3-admin.token
	"$bin" init --config "$DIR/$name.conf" >"$token" 2>"$DIR/$name-init.log" ||
		fail "$(basename "$bin") init: $(cat "$DIR/$name-init.log")"
	chmod 600 "$token"
	"$bin" --config "$DIR/$name.conf" >"$DIR/$name.log" 2>&1 &
	started "$(basename "$bin")" $!
	wait_port "$4" "${PIDS[-1]}" "$(basename "$bin")"
}

# ---- redirector ----------------------------------------------------------------
STEP="redirector"
REDIRECT_PORT=$(free_port)
cat >"$DIR/redirectd.conf" <<EOF
[redirectd]
address = 127.0.0.1
port = $REDIRECT_PORT
cert-file = $DIR/redirect.pem
key-file = $DIR/redirect.key
threads = 2
state-dir = $DIR/redirectd
retry-after = 3
EOF
cloud_daemon "$REDIRECTD" redirectd redirect "$REDIRECT_PORT"
REDIRECT=("$CTL" redirect --url "https://127.0.0.1:$REDIRECT_PORT" --ca "$DIR/redirect-ca.pem"
	--token-file "$DIR/redirect-admin.token")
op_to "$DIR/cloud-at-redirector.token" "${REDIRECT[@]}" token add acme-cloud --role cloud ||
	fail "could not make the cloud's token at the redirector"
chmod 600 "$DIR/cloud-at-redirector.token"
say "redirector on https://127.0.0.1:$REDIRECT_PORT"

# ---- organisation cloud --------------------------------------------------------
STEP="cloud"
CLOUD_PORT=$(free_port)
cat >"$DIR/cloudd.conf" <<EOF
[cloudd]
address = 127.0.0.1
port = $CLOUD_PORT
cert-file = $DIR/cloud.pem
key-file = $DIR/cloud.key
threads = 2
state-dir = $DIR/cloudd
public-url = https://127.0.0.1:$CLOUD_PORT
public-ca-file = $DIR/cloud-ca.pem
[redirector]
url = https://127.0.0.1:$REDIRECT_PORT
ca-file = $DIR/redirect-ca.pem
token-file = $DIR/cloud-at-redirector.token
EOF
cloud_daemon "$CLOUDD" cloudd cloud "$CLOUD_PORT"
CLOUD=("$CTL" cloud --url "https://127.0.0.1:$CLOUD_PORT" --ca "$DIR/cloud-ca.pem"
	--token-file "$DIR/cloud-admin.token")
say "organisation cloud on https://127.0.0.1:$CLOUD_PORT"

# ---- conductors ----------------------------------------------------------------
start_conductor() {
	local role=$1 name=$2
	cat >"$DIR/$name.conf" <<EOF
[conductor]
role = $role
name = $name
state-dir = $DIR/$name
listen = 127.0.0.1
port = 0
threads = 2
poll-timeout = 2
ports-file = $DIR/$name.ports
[admin]
listen = 127.0.0.1
port = 0
EOF
	"$CONDUCTORD" init --config "$DIR/$name.conf" --token-file "$DIR/$name-admin.token" \
		>"$DIR/$name-init.log" 2>&1 || fail "onramp-conductord init ($name): $(cat "$DIR/$name-init.log")"
	"$CONDUCTORD" run --config "$DIR/$name.conf" >"$DIR/$name.log" 2>&1 &
	started "onramp-conductord ($name)" $!
	for _ in $(seq 100); do
		[ -s "$DIR/$name.ports" ] && break
		kill -0 "${PIDS[-1]}" 2>/dev/null || fail "onramp-conductord ($name) exited"
		sleep 0.1
	done
	[ -s "$DIR/$name.ports" ] || fail "onramp-conductord ($name) does not listen"
}
STEP="staging conductor"
start_conductor staging staging
STAGING_PORT=$(jfield 'd["port"]' <"$DIR/staging.ports")
STAGING=("$CTL" conductor --url "https://127.0.0.1:$(jfield 'd["admin_port"]' <"$DIR/staging.ports")"
	--ca "$DIR/staging/ca.pem" --token-file "$DIR/staging-admin.token")
say "staging conductor on 127.0.0.1:$STAGING_PORT"
STEP="production conductor"
start_conductor production production
PRODUCTION_PORT=$(jfield 'd["port"]' <"$DIR/production.ports")
PRODUCTION=("$CTL" conductor --url "https://127.0.0.1:$(jfield 'd["admin_port"]' <"$DIR/production.ports")"
	--ca "$DIR/production/ca.pem" --token-file "$DIR/production-admin.token")
say "production conductor on 127.0.0.1:$PRODUCTION_PORT"

# ---- the factory ---------------------------------------------------------------
STEP="factory provisioning"
ROUTER_STATE=$DIR/router
op "$CTL" factory init-device --serial "$SERIAL" --model SSR1000 --state-dir "$ROUTER_STATE" \
	--tcti "$TCTI" --cloud-key "$DIR/cloudd/inventory.pub.pem" --out "$DIR/$SERIAL.record.json" \
	>"$DIR/factory.log" 2>&1 || fail "onrampctl factory init-device: $(cat "$DIR/factory.log")"
# The factory registers the serial with the redirector: the hash of its claim
# secret, so that only the owner's cloud, which can open the record, claims it.
op_to "$DIR/factory.token" "${REDIRECT[@]}" token add factory-1 --role factory ||
	fail "could not make the factory's token at the redirector"
chmod 600 "$DIR/factory.token"
op "$CTL" redirect --url "https://127.0.0.1:$REDIRECT_PORT" --ca "$DIR/redirect-ca.pem" \
	--token-file "$DIR/factory.token" device register "$DIR/$SERIAL.record.json" >/dev/null ||
	fail "the factory could not register $SERIAL with the redirector"
say "factory: router $SERIAL provisioned, its OCRA key made inside the TPM; registered" \
	"with the redirector"

# ---- the operators, with onrampctl only ------------------------------------------
STEP="cloud setup"
op "${CLOUD[@]}" inventory import "$DIR/$SERIAL.record.json" >/dev/null || fail "inventory import"
op "${CLOUD[@]}" org add acme >/dev/null || fail "org add"
op "${CLOUD[@]}" site add acme paris >/dev/null || fail "site add"
STEP="conductor setup"
op_to "$DIR/staging.psk" "${STAGING[@]}" psk create --name paris 2>>"$DIR/ctl.log" ||
	fail "staging psk create"
op_to "$DIR/staging-ca.pem" "${STAGING[@]}" ca export || fail "staging ca export"
cat >"$DIR/peering.json" <<EOF
{"version": 1, "router": {"name": "$ROUTER"},
 "hub": {"name": "hub-paris", "addresses": ["127.0.0.1:1280"]},
 "neighborhoods": [{"name": "mpls-core", "topology": "spoke", "vector": "mpls"}]}
EOF
op "${STAGING[@]}" router add "$ROUTER" --asset-id "$SERIAL" --config "$DIR/peering.json" >/dev/null ||
	fail "staging router add"
op "${PRODUCTION[@]}" router add "$ROUTER" --asset-id "$SERIAL" --config "$DIR/peering.json" >/dev/null ||
	fail "production router add"
op_to "$DIR/production.psk" "${PRODUCTION[@]}" psk create --name "$ROUTER" 2>>"$DIR/ctl.log" ||
	fail "production psk create"
op_to "$DIR/production-ca.pem" "${PRODUCTION[@]}" ca export || fail "production ca export"
op "${STAGING[@]}" router production "$ROUTER" --address "127.0.0.1:$PRODUCTION_PORT" \
	--psk-file "$DIR/production.psk" --root-ca "$DIR/production-ca.pem" >/dev/null ||
	fail "staging router production"
STEP="trust in the cloud's onboarding assertions"
op_to "$DIR/assertion-cert.pem" "${CLOUD[@]}" assertion-cert export ||
	fail "cloud assertion-cert export"
op "${STAGING[@]}" trust-cloud --cert "$DIR/assertion-cert.pem" >/dev/null || fail "staging trust-cloud"
op "${PRODUCTION[@]}" trust-cloud --cert "$DIR/assertion-cert.pem" >/dev/null ||
	fail "production trust-cloud"
STEP="site settings and claim"
op "${CLOUD[@]}" site set acme paris --conductor 127.0.0.1 --port "$STAGING_PORT" \
	--psk-file "$DIR/staging.psk" --ca-file "$DIR/staging-ca.pem" >/dev/null || fail "site set"
op "${CLOUD[@]}" claim --serial "$SERIAL" --org acme --site paris >/dev/null || fail "claim"
say "operators: organisation acme, site paris, router $SERIAL claimed; staging and production" \
	"conductors know router $ROUTER, secrets and root CAs handed over, and trust the cloud's" \
	"onboarding assertions"

# ---- the router ------------------------------------------------------------------
STEP="router agent"
SOCKET=$DIR/agent.sock
cat >"$DIR/agent.conf" <<EOF
[agent]
state-dir = $ROUTER_STATE
control-socket = $SOCKET
[proxy]
mode = static
static = 127.0.0.1:$SQUID_PORT
user = $PROXY_USER
password-file = $DIR/proxy-password
health-interval = 5
[device]
tcti = $TCTI
[onboarding]
redirector-url = https://127.0.0.1:$REDIRECT_PORT
redirector-ca = $DIR/redirect-ca.pem
retry-base = 1
retry-cap = 5
poll-wait = 2
EOF
"$AGENT" -c "$DIR/agent.conf" >"$DIR/agent.log" 2>&1 &
AGENT_PID=$!
started onramp-agent $AGENT_PID
say "router agent started (through squid only)"

# Prints each step as the agent reports it done; returns when $1 is done.
SEEN=""
follow_until() {
	local want=$1 deadline=$(($(date +%s) + TIMEOUT)) out
	while :; do
		kill -0 "$AGENT_PID" 2>/dev/null || fail "the agent exited (see agent.log)"
		if out=$("$CTL" show onboarding --json --socket "$SOCKET" 2>/dev/null); then
			while IFS=$'\t' read -r step when; do
				case " $SEEN " in *" $step "*) continue ;; esac
				SEEN="$SEEN $step"
				say "  router: $step done at $when"
			done < <(printf '%s' "$out" | python3 -c '
import json, sys
d = json.load(sys.stdin)
for s in d["steps"]:
    if s["done"]:
        print(s["step"] + "\t" + s["done"])')
			case " $SEEN " in *" $want "*) return 0 ;; esac
		fi
		if [ "$(date +%s)" -ge "$deadline" ]; then
			STEP="router: $(printf '%s' "$out" | jfield 'd["current"]' 2>/dev/null || echo "$want")"
			fail "$want not reached after ${TIMEOUT}s; connection $(printf '%s' "$out" |
				jfield 'd["connection"] + ("" if not d.get("last_error") or d["last_error"]["reason"] in d["connection"] else "; last error: " + d["last_error"]["step"] + ": " + d["last_error"]["reason"])' 2>/dev/null)"
		fi
		sleep 0.3
	done
}
STEP="onboarding to the staging conductor"
follow_until production-info

STEP="migrate"
say "operator: migrate router $ROUTER to the production conductor"
op "${STAGING[@]}" migrate conductor "127.0.0.1:$PRODUCTION_PORT" router "$ROUTER" --wait \
	>"$DIR/migrate.out" 2>&1 || fail "$(cat "$DIR/migrate.out")"
follow_until running

STEP="production check"
state=""
for _ in $(seq 100); do
	state=$("${PRODUCTION[@]}" show assets --json |
		python3 -c "import json,sys; print(next((a['state'] for a in json.load(sys.stdin)['assets'] if a['asset_id']=='$SERIAL'), ''))")
	[ "$state" = running ] && break
	sleep 0.2
done
[ "$state" = running ] || fail "the production conductor shows router $ROUTER as '$state'"
"$CTL" show onboarding --socket "$SOCKET" | sed 's/^/demo:   | /'
say "the cloud has $("${CLOUD[@]}" device events "$SERIAL" --json | jfield 'len(d["events"])') progress reports of router $SERIAL"
say "took $(($(date +%s) - T0)) s"
if [ "$KEEP" = 1 ]; then
	say "the lab's directory: $DIR (live logs there)"
	printf 'dashboard: https://127.0.0.1:%s/ui/ token-file: %s\n' "$CLOUD_PORT" "$DIR/cloud-admin.token"
	say "  (its certificate is from the demo's own CA: $DIR/cloud-ca.pem)"
fi
say "router $ROUTER is running on the production conductor"
