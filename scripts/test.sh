#!/usr/bin/env bash
# Installs everything the test suite needs, then runs the whole suite.
#
#   scripts/test.sh                  install what is missing, then run every test
#   scripts/test.sh --install-only   only install
#   scripts/test.sh -- ARGS          pass ARGS to `cargo nextest run` (or `cargo test`)
#
# On a fresh Debian 12 machine, as root, with network to the package registries only. Every
# step checks first and does nothing when its result is already there, so a second run goes
# straight to the tests. Python clients go to target/venv and target/venv-kp2, kafkajs to
# tests/clients/node/node_modules, the Go Sarama client to target/clients/sarama-client (GOPATH
# mode against Debian's Sarama), the rskafka client to target/rust-client/debug/rskafka-client.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
install_only=0
test_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --install-only) install_only=1 ;;
        --) shift; test_args=("$@"); break ;;
        *) echo "usage: $0 [--install-only] [-- TEST-RUNNER-ARGS]" >&2; exit 2 ;;
    esac
    shift
done

# --- third-party captures -------------------------------------------------------------------
# Not part of the repository. Tests read them from $CHRONIK_THIRD_PARTY_CAPTURES, else
# ../shared/captures/third-party, and skip them when neither exists, except under CI or when
# that variable names a missing folder (tests/it/common/tshark.rs third_party_dir decides the same
# way); say so here, where it is seen, since the test runner hides a passing test's stderr.
third_party=${CHRONIK_THIRD_PARTY_CAPTURES:-$ROOT/../shared/captures/third-party}
third_party_note=
if [ "$install_only" = 0 ] && ! [ -d "$third_party" ]; then
    if [ -n "${CHRONIK_THIRD_PARTY_CAPTURES:-}" ]; then
        echo "scripts/test.sh: third-party captures not found at $third_party (from \$CHRONIK_THIRD_PARTY_CAPTURES)" >&2
        exit 1
    fi
    case "${CI:-}" in
        "" | false | 0) ;;
        *)
            echo "scripts/test.sh: third-party captures not found at $third_party (required under CI; set CHRONIK_THIRD_PARTY_CAPTURES=DIR)" >&2
            exit 1
            ;;
    esac
    # Each test that reads them calls third_party_dir() once.
    n=$(cat tests/it/*.rs | grep -o 'third_party_dir()' | wc -l)
    third_party_note="third-party captures not found at $third_party: the $n tests that read them skip them (set CHRONIK_THIRD_PARTY_CAPTURES=DIR to run them in full)"
fi

step() { printf '\n== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }
started=$(date +%s)

# --- Debian packages ------------------------------------------------------------------------
# Each need is checked by what the tests use (a command, a source tree), so a tool that came
# from elsewhere (node from another source, say) counts as present.
# kcat: librdkafka 2.0 client; tshark: the oracle in tests/it/third_party_captures.rs; tmux: the
# terminal UI tests; golang-go + Sarama: the Go client; python3 (+ python3-venv, installed
# below if venv creation fails): the Python clients;
# nodejs + npm: kafkajs; build-essential + pkg-config: C parts of the Rust client's codecs
# (zstd, lz4) and of cgo (Sarama's zstd).
missing=()
need_cmd() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need_cmd kcat kcat
need_cmd tshark tshark
need_cmd tmux tmux
need_cmd go golang-go
need_cmd node nodejs
need_cmd cc build-essential
need_cmd make build-essential
need_cmd pkg-config pkg-config
need_cmd python3 python3
[ -f /usr/share/gocode/src/github.com/Shopify/sarama/sarama.go ] \
    || missing+=(golang-github-shopify-sarama-dev)
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u | sed '/^$/d')

apt_updated=0
apt_install() { # PACKAGE...
    step "apt-get install $*"
    if [ "$(id -u)" != 0 ]; then
        echo "scripts/test.sh: missing Debian packages ($*); run as root" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    # tshark asks whether non-root users may capture; answer no without a prompt.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    if [ "$apt_updated" = 0 ]; then
        apt-get update -q
        apt_updated=1
    fi
    apt-get install -y -q --no-install-recommends "$@"
}
if [ ${#missing[@]} -gt 0 ]; then
    apt_install "${missing[@]}"
fi
# Some nodejs builds bring npm (and conflict with Debian's npm package): check after nodejs.
command -v npm >/dev/null 2>&1 || apt_install npm

# --- Python clients -------------------------------------------------------------------------
# A venv is (re)built when its requirements file changed since it was last installed.
python_venv() { # DIR REQUIREMENTS
    local dir=$1 req=$2 stamp="$1/.requirements"
    if [ -x "$dir/bin/python" ] && cmp -s "$req" "$stamp"; then
        return
    fi
    step "Python venv $dir from $req"
    rm -rf "$dir"
    if ! python3 -m venv "$dir"; then
        # Debian's python3 makes venvs with pip only with python3-venv installed.
        rm -rf "$dir"
        apt_install python3-venv
        python3 -m venv "$dir"
    fi
    "$dir/bin/pip" install -q --disable-pip-version-check -r "$req"
    cp "$req" "$stamp"
}
python_venv target/venv tests/clients/python/requirements.txt
python_venv target/venv-kp2 tests/clients/python/requirements-kp2.txt
# kafka-python 2.0.2 predates Python 3.12; check that it imports on this Python.
target/venv-kp2/bin/python -c 'import kafka, kafka.vendor.six; assert kafka.__version__ == "2.0.2"'

# --- kafkajs --------------------------------------------------------------------------------
node_dir=tests/clients/node
if ! [ -f "$node_dir/node_modules/kafkajs/package.json" ] \
    || ! cmp -s "$node_dir/package-lock.json" "$node_dir/node_modules/.installed-lock.json"; then
    step "npm ci (kafkajs)"
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$node_dir/package-lock.json" "$node_dir/node_modules/.installed-lock.json"
fi

# --- Go Sarama client (GOPATH mode against Debian's packaged Sarama) -------------------------
sarama_bin=target/clients/sarama-client
if [ ! -x "$sarama_bin" ] || [ -n "$(find tests/clients/go -newer "$sarama_bin" -name '*.go')" ]; then
    step "go build (Sarama client)"
    mkdir -p target/gopath target/clients
    GO111MODULE=off GOFLAGS= GOPATH="$ROOT/target/gopath:/usr/share/gocode" \
        GOCACHE="$ROOT/target/go-cache" CGO_CFLAGS="-w" \
        go build -o "$sarama_bin" ./tests/clients/go/sarama
fi

# --- rskafka client (its own crate, not a member of this workspace) --------------------------
step "cargo build (rskafka client)"
CARGO_TARGET_DIR="$ROOT/target/rust-client" cargo build --quiet --locked \
    --manifest-path tests/clients/rust/Cargo.toml

echo "install steps took $(( $(date +%s) - started )) s"
[ "$install_only" = 1 ] && exit 0

# --- the suite ------------------------------------------------------------------------------
step "tests"
[ -n "$third_party_note" ] && echo "$third_party_note"
# The test runner's own summary stays the last thing printed (CI reads it).
if cargo nextest --version >/dev/null 2>&1; then
    exec cargo nextest run --no-fail-fast "${test_args[@]}"
else
    exec cargo test --no-fail-fast "${test_args[@]}"
fi
