# Shared by the scripts in this folder: `source "$(dirname "$0")/lib.sh"`.
# Sets ROOT and makes sure the tools the project needs are present, installing what is missing.

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CANISTERS=(model_repo agent_factory agent coordinator economics)
WASM_DIR="${OHMS_WASM_DIR:-$ROOT/wasm}"
IC_WASM="$ROOT/tools/node_modules/@icp-sdk/ic-wasm-linux-x64/bin/ic-wasm"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# The toolchain rust-toolchain.toml pins, with the wasm32 target. rustup can only link an
# installed toolchain here (no downloads), so a stable toolchain of the pinned version is
# registered under the pinned name when that name is missing.
ensure_rust() {
  local pinned
  pinned=$(sed -n 's/^channel = "\(.*\)"/\1/p' "$ROOT/rust-toolchain.toml")
  if ! rustup toolchain list | grep -q "^$pinned"; then
    local stable_version
    stable_version=$(rustc +stable --version | awk '{print $2}')
    if [ "$stable_version" != "$pinned" ]; then
      echo "rust-toolchain.toml pins $pinned but the installed stable toolchain is $stable_version" >&2
      exit 1
    fi
    log "registering the installed stable toolchain as $pinned"
    rustup toolchain link "$pinned" "$(rustc +stable --print sysroot)"
  fi
  if ! (cd "$ROOT" && rustup target list --installed | grep -q wasm32-unknown-unknown); then
    log "adding the wasm32-unknown-unknown target"
    (cd "$ROOT" && rustup target add wasm32-unknown-unknown)
  fi
}

# ic-wasm from the npm registry, at the version tools/package-lock.json pins.
ensure_ic_wasm() {
  if [ ! -x "$IC_WASM" ]; then
    log "installing ic-wasm (npm @icp-sdk/ic-wasm-linux-x64)"
    (cd "$ROOT/tools" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# The real IC clients tests/http/run drives (@icp-sdk/core, icp-cli), at the versions
# tests/http/package-lock.json pins.
ensure_http_clients() {
  if [ ! -x "$ROOT/tests/http/node_modules/@icp-sdk/icp-cli-linux-x64/bin/icp" ] \
    || [ ! -d "$ROOT/tests/http/node_modules/@icp-sdk/core" ]; then
    log "installing @icp-sdk/core and icp-cli (npm)"
    (cd "$ROOT/tests/http" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}
