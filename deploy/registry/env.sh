# Shared settings for start/stop; sourced, not run.
REGISTRY_HOME_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOPUP_REGISTRY_PORT="${TOPUP_REGISTRY_PORT:-8081}"
TOPUP_REGISTRY_DATA_DIR="${TOPUP_REGISTRY_DATA_DIR:-$REGISTRY_HOME_DIR/.data/$TOPUP_REGISTRY_PORT}"
REGISTRY_PID_FILE="$TOPUP_REGISTRY_DATA_DIR/registry.pid"
REGISTRY_URL="http://127.0.0.1:$TOPUP_REGISTRY_PORT"

registry_pid() {
  [ -f "$REGISTRY_PID_FILE" ] || return 1
  local pid
  pid=$(cat "$REGISTRY_PID_FILE")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
