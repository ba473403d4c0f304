# shellcheck shell=bash
# A throwaway RabbitMQ node for the exchange benchmark's peer run; sourced by bench/exchange/run.
#   rabbitmq_start DIR   starts a node of Debian's rabbitmq-server (installed by the caller) as
#                        the current user, everything under DIR, listening on 127.0.0.1 only;
#                        sets RABBITMQ_URL and RABBITMQ_PIDS (the node's beam.smp).
#   rabbitmq_stop        stops it.
# The node has its own name, AMQP, distribution and epmd ports and Erlang cookie, so a system
# node (the package's postinst may start rabbit@HOST on 5672) neither serves the benchmark nor
# is disturbed by it; a running system node is stopped first to leave the cores to the benchmark.

_rabbitmq_dir=
_rabbitmq_node=
_rabbitmq_wrapper=
_rabbitmq_epmd_port=

_rabbitmq_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Debian's /usr/sbin wrappers switch to the rabbitmq user when run as root: call the scripts
# behind them, which run as whoever calls them.
_rabbitmq_bin() {
  local name=$1
  if [[ -x /usr/lib/rabbitmq/bin/$name ]]; then
    echo "/usr/lib/rabbitmq/bin/$name"
  else
    command -v "$name"
  fi
}

# Runs a command with the node's environment (not exported into the caller's shell).
_rabbitmq_env() {
  local dir=$_rabbitmq_dir
  env HOME="$dir" \
    RABBITMQ_NODENAME="$_rabbitmq_node" \
    RABBITMQ_CONF_ENV_FILE="$dir/rabbitmq-env.conf" \
    RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
    RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
    RABBITMQ_MNESIA_BASE="$dir/mnesia" \
    RABBITMQ_LOG_BASE="$dir/log" \
    RABBITMQ_PID_FILE="$dir/beam.pid" \
    ERL_EPMD_PORT="$_rabbitmq_epmd_port" \
    ERL_EPMD_ADDRESS=127.0.0.1 \
    "$@"
}

_rabbitmq_ctl() {
  _rabbitmq_env timeout 60 "$(_rabbitmq_bin rabbitmqctl)" -n "$_rabbitmq_node" "$@"
}

_rabbitmq_stop_system_node() {
  if [[ -d /run/systemd/system ]] && systemctl is-active --quiet rabbitmq-server 2>/dev/null; then
    echo "bench/exchange: stopping the system's rabbitmq-server" >&2
    systemctl stop rabbitmq-server || true
  elif pgrep -u rabbitmq -x beam.smp >/dev/null 2>&1; then
    echo "bench/exchange: stopping the system's RabbitMQ node" >&2
    # The package's wrapper runs as the rabbitmq user, with that user's cookie.
    timeout 60 rabbitmqctl stop >/dev/null 2>&1 || true
  fi
}

rabbitmq_start() {
  local dir=$1 server port dist_port
  server=$(_rabbitmq_bin rabbitmq-server) || {
    echo "bench/exchange: rabbitmq-server is not installed (apt-get install rabbitmq-server)" >&2
    return 1
  }
  _rabbitmq_stop_system_node
  mkdir -p "$dir/mnesia" "$dir/log"
  _rabbitmq_dir=$(cd "$dir" && pwd)
  _rabbitmq_node=bench-$$-$RANDOM@localhost
  port=$(_rabbitmq_free_port)
  dist_port=$(_rabbitmq_free_port)
  _rabbitmq_epmd_port=$(_rabbitmq_free_port)
  : >"$_rabbitmq_dir/rabbitmq-env.conf"
  echo '[].' >"$_rabbitmq_dir/enabled_plugins"
  cat >"$_rabbitmq_dir/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$port
loopback_users.guest = true
EOF
  (umask 077 && od -An -N20 -tx1 /dev/urandom | tr -d ' \n' >"$_rabbitmq_dir/.erlang.cookie")
  chmod 400 "$_rabbitmq_dir/.erlang.cookie"
  _rabbitmq_env RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$port" \
    RABBITMQ_DIST_PORT="$dist_port" \
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
    "$server" >"$_rabbitmq_dir/log/server.out" 2>&1 </dev/null &
  _rabbitmq_wrapper=$!
  local deadline=$((SECONDS + 60))
  until _rabbitmq_ctl -q await_startup --timeout 10 >/dev/null 2>&1; do
    if ((SECONDS >= deadline)) || ! kill -0 "$_rabbitmq_wrapper" 2>/dev/null; then
      echo "bench/exchange: RabbitMQ did not start; the end of its logs:" >&2
      tail -n 40 "$_rabbitmq_dir/log/server.out" "$_rabbitmq_dir/log/"*.log >&2 2>/dev/null || true
      rabbitmq_stop
      return 1
    fi
    sleep 0.5
  done
  RABBITMQ_URL="amqp://guest:guest@127.0.0.1:$port/%2f"
  RABBITMQ_PIDS=$(cat "$_rabbitmq_dir/beam.pid")
  export RABBITMQ_URL RABBITMQ_PIDS
  echo "bench/exchange: RabbitMQ $(_rabbitmq_ctl -q eval 'rabbit_misc:version().' | tr -d '"') node $_rabbitmq_node on 127.0.0.1:$port (pid $RABBITMQ_PIDS)" >&2
}

rabbitmq_stop() {
  [[ -n $_rabbitmq_wrapper ]] || return 0
  local beam
  beam=$(cat "$_rabbitmq_dir/beam.pid" 2>/dev/null || true)
  _rabbitmq_ctl -q stop >/dev/null 2>&1 || true
  for _ in $(seq 1 100); do
    kill -0 "${beam:-$_rabbitmq_wrapper}" 2>/dev/null || break
    sleep 0.1
  done
  local pid
  for pid in $beam "$_rabbitmq_wrapper"; do
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  wait "$_rabbitmq_wrapper" 2>/dev/null || true
  # The epmd the node started on its own port.
  ERL_EPMD_PORT=$_rabbitmq_epmd_port epmd -kill >/dev/null 2>&1 || true
  _rabbitmq_wrapper=
  unset RABBITMQ_URL RABBITMQ_PIDS
}
