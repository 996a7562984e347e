#!/usr/bin/env bash
# The Debian packages the test suite needs, checked before `make test` runs it:
#   postgresql      initdb/pg_ctl for the throwaway cluster the PostgreSQL tests start
#   chromium        the browser the dashboard tests drive through Playwright
#   fonts-noto-cjk  Japanese and Korean markings in the dashboard and its screenshots
#   nodejs, npm     the dashboard's JavaScript lint and unit tests
# Silent when everything is there. As root, installs what is missing with apt-get; otherwise
# prints the one command to run and stops, so the suite never runs with parts of it unable to.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }
installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

missing_packages() {
  local missing=()
  # Debian keeps the server binaries off PATH, under /usr/lib/postgresql/VERSION/bin.
  have initdb || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
  have chromium || missing+=(chromium)
  installed fonts-noto-cjk || missing+=(fonts-noto-cjk)
  # Commands, not package names: Node.js from another Debian source ships npm inside its own
  # nodejs package, and Debian's npm would conflict with it.
  have node || missing+=(nodejs)
  have npm || missing+=(npm)
  echo "${missing[@]}"
}

read -r -a missing <<<"$(missing_packages)"
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "The tests need these Debian packages, which are missing: ${missing[*]}. Install them with:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
if ! have apt-get; then
  echo "The tests need these Debian packages, which are missing: ${missing[*]}; this system has no apt-get to install them." >&2
  exit 1
fi

echo "system-packages: installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

read -r -a still <<<"$(missing_packages)"
if [ ${#still[@]} -ne 0 ]; then
  echo "system-packages: still missing after apt-get install: ${still[*]}" >&2
  exit 1
fi
