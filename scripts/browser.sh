#!/usr/bin/env bash
# Debian's chromium for the dashboard tests (Playwright drives it at /usr/bin/chromium);
# no Playwright browser download. Does nothing when it is already there.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" -eq 0 ]; then sudo=(); else sudo=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq chromium >/dev/null
/usr/bin/chromium --version
