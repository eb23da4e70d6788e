# Shared settings for start/stop; sourced, not run.
APICURIO_HOME_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOPUP_APICURIO_PORT="${TOPUP_APICURIO_PORT:-8081}"
TOPUP_APICURIO_DATA_DIR="${TOPUP_APICURIO_DATA_DIR:-$APICURIO_HOME_DIR/.data/$TOPUP_APICURIO_PORT}"
TOPUP_APICURIO_DIST_DIR="${TOPUP_APICURIO_DIST_DIR:-$APICURIO_HOME_DIR/.dist}"
TOPUP_APICURIO_HEAP="${TOPUP_APICURIO_HEAP:-128m}"
APICURIO_PID_FILE="$TOPUP_APICURIO_DATA_DIR/apicurio.pid"
# The Confluent-compatible API: what the worker and confluent-kafka's client talk to.
APICURIO_URL="http://127.0.0.1:$TOPUP_APICURIO_PORT/apis/ccompat/v7"
# 3.x needs Java 21+; 2.6.x (a legacy *-runner.jar layout) still runs on Java 17.
APICURIO_VERSION="3.3.3"
APICURIO_LEGACY_VERSION="2.6.13.Final"

apicurio_pid() {
  [ -f "$APICURIO_PID_FILE" ] || return 1
  local pid
  pid=$(cat "$APICURIO_PID_FILE")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
