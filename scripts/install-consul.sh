#!/usr/bin/env bash
# Install a consul binary for the tests (as root, idempotent).
# Debian 12 has no consul package; Debian 11 (bullseye) ships consul 1.8.7.  We fetch
# that .deb with apt from the SAME Debian archive this machine already uses (read from
# its apt sources; no host name is written here), with the suite changed to bullseye,
# through a temporary sources file that only this script's apt calls see, and unpack
# the binary into /opt/qhb-patroni/consul (symlinked as /usr/local/bin/consul).
set -euo pipefail

DEST=${QHB_CONSUL_DIR:-/opt/qhb-patroni/consul}
LINK=/usr/local/bin/consul

if command -v consul >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "install-consul.sh: run as root" >&2
    exit 1
fi

# The archive URI (and its keyring) of the machine's main Debian source: the first
# deb822 stanza or one-line entry that is not the security archive.
uri=""
keyring=""
for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] || continue
    found=$(awk '
        /^[[:space:]]*$/ { if (u != "" && u !~ /security/) { print u "|" k; exit } u=""; k=""; next }
        /^URIs:/ { u=$2 }
        /^Signed-By:/ { k=$2 }
        END { if (u != "" && u !~ /security/) print u "|" k }
    ' "$f" | head -n1)
    if [ -n "$found" ]; then
        uri=${found%%|*}
        keyring=${found#*|}
        break
    fi
done
if [ -z "$uri" ]; then
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -e "$f" ] || continue
        uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { print $i; exit } }' "$f" \
              | grep -v security | head -n1 || true)
        [ -n "$uri" ] && break
    done
fi
if [ -z "$uri" ]; then
    echo "install-consul.sh: cannot find the Debian archive in the apt sources" >&2
    exit 1
fi

tmp=$(mktemp -d /tmp/qhb-consul-apt.XXXXXX)
chmod 0755 "$tmp"  # apt downloads as user _apt
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT
list="$tmp/bullseye.list"
if [ -n "$keyring" ]; then
    echo "deb [signed-by=$keyring] $uri bullseye main" > "$list"
else
    echo "deb $uri bullseye main" > "$list"
fi
apt_opts=(-o "Dir::Etc::sourcelist=$list" -o "Dir::Etc::sourceparts=-" -o "APT::Get::List-Cleanup=0")

echo "install-consul: fetching consul from the bullseye suite of $uri"
apt-get "${apt_opts[@]}" update -qq
(cd "$tmp" && apt-get "${apt_opts[@]}" download consul >/dev/null)
deb=$(ls "$tmp"/consul_*.deb | head -n1)
dpkg-deb -x "$deb" "$tmp/root"
mkdir -p "$DEST"
install -m 0755 "$tmp/root/usr/bin/consul" "$DEST/consul"
ln -sf "$DEST/consul" "$LINK"
"$LINK" version | head -n1
