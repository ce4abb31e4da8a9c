#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and the demo need, when
# missing.  Extra package names may be passed (the benchmark adds torch).
set -euo pipefail
pkgs=(make gcc postgresql-15 postgresql-server-dev-15 libopenblas-dev
      libopenblas-openmp-dev postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl "$@")
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "missing packages: ${missing[*]}; run as root to install them" >&2
		exit 1
	fi
	echo "installing: ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
