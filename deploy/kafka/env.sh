# Shared settings for start/stop/reset; sourced, not run.
KAFKA_HOME_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TOPUP_KAFKA_PORT="${TOPUP_KAFKA_PORT:-9092}"
TOPUP_KAFKA_CONTROLLER_PORT="${TOPUP_KAFKA_CONTROLLER_PORT:-$((TOPUP_KAFKA_PORT + 1))}"
TOPUP_KAFKA_SASL_PORT="${TOPUP_KAFKA_SASL_PORT:-$((TOPUP_KAFKA_PORT + 2))}"
TOPUP_KAFKA_SASL_USERNAME="${TOPUP_KAFKA_SASL_USERNAME:-topup}"
TOPUP_KAFKA_SASL_PASSWORD="${TOPUP_KAFKA_SASL_PASSWORD:-topup-secret}"
TOPUP_KAFKA_DATA_DIR="${TOPUP_KAFKA_DATA_DIR:-$KAFKA_HOME_DIR/.data/$TOPUP_KAFKA_PORT}"
TOPUP_KAFKA_LIB_DIR="${TOPUP_KAFKA_LIB_DIR:-$KAFKA_HOME_DIR/.lib}"
TOPUP_KAFKA_HEAP="${TOPUP_KAFKA_HEAP:-1g}"
KAFKA_PID_FILE="$TOPUP_KAFKA_DATA_DIR/broker.pid"
KAFKA_BOOTSTRAP="127.0.0.1:$TOPUP_KAFKA_PORT"

KAFKA_JAVA_OPTS=(-Xms256m "-Xmx$TOPUP_KAFKA_HEAP" -XX:+UseG1GC -Djava.awt.headless=true
  "-Dlog4j2.configurationFile=$KAFKA_HOME_DIR/log4j2.properties"
  "-Dkafka.logs.dir=$TOPUP_KAFKA_DATA_DIR" -cp "$TOPUP_KAFKA_LIB_DIR/*")

kafka_java() { java "${KAFKA_JAVA_OPTS[@]}" "$@"; }

broker_pid() {
  [ -f "$KAFKA_PID_FILE" ] || return 1
  local pid
  pid=$(cat "$KAFKA_PID_FILE")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
